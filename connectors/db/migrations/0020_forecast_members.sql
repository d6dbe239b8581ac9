-- The combined forecast (issue 13): each nightly forecast keeps what its members forecast for
-- the first weeks, so that once those days have sold, each member's real error on each SKU
-- weights the blends of later nights without any refit; and the blend that was published.
ALTER TABLE run_forecasts
    ADD COLUMN members      jsonb,   -- {"ets": [units per day, 28 days], ...}; cleared after 63 days
    ADD COLUMN weights      jsonb,   -- {"ets": 0.31, ...}: the blend behind mean
    ADD COLUMN demand_class text;    -- smooth, erratic, intermittent or lumpy (Syntetos–Boylan)
