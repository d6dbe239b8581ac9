-- A new shop has no runs of four and eight weeks ago whose member forecasts could weight its
-- blends. The nightly run then makes one: the members fitted on the history as it stood that
-- day, stored as a 'validation' run. Such a run holds member forecasts only and is never a
-- shop's current forecast, which is always its latest 'committed' run.
ALTER TABLE forecast_runs DROP CONSTRAINT forecast_runs_status_check;
ALTER TABLE forecast_runs ADD CONSTRAINT forecast_runs_status_check
    CHECK (status IN ('running', 'committed', 'validation'));
