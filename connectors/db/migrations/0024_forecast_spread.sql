-- The forecast's own uncertainty for inventory policy: each combined forecast keeps the SKU's
-- spread, the root mean square of its blend's validation errors in units of
-- sqrt(forecast + 0.25) (models.ensemble.daily_sd). The 80 % band alone cannot give it: a
-- slow seller's band is [0, 80th percentile], which says little of its lumpy days.
ALTER TABLE run_forecasts ADD COLUMN spread real;  -- null: no validation errors yet
