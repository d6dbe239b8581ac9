-- What each shop's forecasts were last republished for: its local day, its last committed
-- nightly run and its settings version. The worker kept this in memory, so every restart
-- republished every shop, one after another, and a settings change made meanwhile waited
-- behind them all (a CI run saw a lead time change wait over a minute).
CREATE TABLE forecast_publications (
    shop         text PRIMARY KEY REFERENCES shops (domain) ON DELETE CASCADE,
    local_day    date NOT NULL,
    run_id       bigint,
    settings     bigint NOT NULL,
    published_at timestamptz NOT NULL DEFAULT now()
);
