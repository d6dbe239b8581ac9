-- Forecasting state. The online model of each SKU lives here, not in a Faust table, so a
-- restarted worker continues where it stopped. Nightly runs are written beside the last good
-- one and switched to in one transaction; runs are kept 90 days to track accuracy.

CREATE TABLE sku_models (
    shop          text NOT NULL REFERENCES shops (domain) ON DELETE CASCADE,
    variant_id    bigint NOT NULL,
    state         bytea NOT NULL,          -- the pickled models.online.OnlineDemandModel
    last_day      date,                    -- the last closed shop-local day it learned
    days_learned  integer NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (shop, variant_id)
);

CREATE TABLE forecast_runs (
    id           bigserial PRIMARY KEY,
    shop         text NOT NULL REFERENCES shops (domain) ON DELETE CASCADE,
    run_day      date NOT NULL,            -- shop-local day it forecasts from (history before it)
    status       text NOT NULL CHECK (status IN ('running', 'committed')),
    started_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    skus         integer,
    UNIQUE (shop, run_day)                 -- a rerun the same day resumes the same run
);
CREATE INDEX forecast_runs_committed ON forecast_runs (shop, run_day DESC) WHERE status = 'committed';

CREATE TABLE run_forecasts (
    run_id       bigint NOT NULL REFERENCES forecast_runs (id) ON DELETE CASCADE,
    shop         text NOT NULL,
    variant_id   bigint NOT NULL,
    first_day    date NOT NULL,
    mean         real[] NOT NULL,
    lower        real[] NOT NULL,
    upper        real[] NOT NULL,
    model        text NOT NULL,
    mase         real,                     -- how earlier runs did on this SKU since they ran
    abc_class    text,
    fit_seconds  real NOT NULL,
    PRIMARY KEY (run_id, variant_id)
);
