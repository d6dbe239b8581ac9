-- What the year-end season (models.season: the shop's own last year, mid-November to early
-- January) did to each combined forecast, day by day: the forecast over the same blend of its
-- members as fitted. The plan shows it, so a merchant can tell why December doubled.
ALTER TABLE run_forecasts ADD COLUMN season real[];  -- null: outside the season
ALTER TABLE sku_plans ADD COLUMN season real[];      -- the same, from the plan's first day
