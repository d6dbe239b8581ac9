-- When each shop's newest webhook arrived, for its connection page. The inbox keeps finished
-- rows for a minute only; pruning carries their newest receipt time here.
ALTER TABLE shops ADD COLUMN last_webhook_at timestamptz;
