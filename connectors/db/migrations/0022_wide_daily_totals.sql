-- A day's totals are sums over every order of the day, each order within the bounds the ingress
-- checks per line. Signed orders within those bounds could still push one past integer or
-- numeric(16, 2), and then every later sale of that SKU that day failed with an overflow and
-- went to dead letters. bigint and 30 digits cannot be reached by any number of orders a day.
-- Queries that add these up cast the sum back to bigint: sum(bigint) is numeric.
DROP TRIGGER daily_demand_corrections ON daily_demand;
ALTER TABLE daily_demand
    ALTER COLUMN units TYPE bigint,
    ALTER COLUMN revenue TYPE numeric(30, 2);
CREATE TRIGGER daily_demand_corrections AFTER INSERT OR UPDATE OF units ON daily_demand
    FOR EACH ROW EXECUTE FUNCTION stockpulse_note_demand_correction();
