-- Time series on plain PostgreSQL: monthly range partitions, BRIN on time, and the daily_demand
-- rollup (0001) maintained by the writer. The TimescaleDB variant of this step keeps the same
-- table names and columns, so every query is shared.

-- Append-only audit of every change to demand, at the time of the order it belongs to.
CREATE TABLE demand_ledger (
    shop           text NOT NULL,
    variant_id     bigint NOT NULL,
    line_item_id   bigint NOT NULL,
    ts             timestamptz NOT NULL,
    units_delta    integer NOT NULL,
    revenue_delta  numeric(16, 2) NOT NULL,
    cause          text NOT NULL,               -- the Shopify event id that made the change
    recorded_at    timestamptz NOT NULL DEFAULT now()
) PARTITION BY RANGE (ts);
CREATE INDEX demand_ledger_ts ON demand_ledger USING brin (ts);
CREATE INDEX demand_ledger_sku ON demand_ledger (shop, variant_id, ts);

-- Every applied stock level, for stockout-day detection and history charts.
CREATE TABLE stock_history (
    shop               text NOT NULL,
    inventory_item_id  bigint NOT NULL,
    location_id        bigint NOT NULL,
    available          integer,
    ts                 timestamptz NOT NULL,
    UNIQUE (shop, inventory_item_id, location_id, ts)
) PARTITION BY RANGE (ts);
CREATE INDEX stock_history_ts ON stock_history USING brin (ts);

CREATE TABLE demand_ledger_default PARTITION OF demand_ledger DEFAULT;
CREATE TABLE stock_history_default PARTITION OF stock_history DEFAULT;

-- Create the monthly partitions of `parent` covering [from_month, to_month]. Rows that already
-- landed in the default partition for such a month are moved into the new partition.
CREATE FUNCTION stockpulse_ensure_partitions(parent text, from_month date, to_month date)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    month    date := date_trunc('month', from_month)::date;
    created  integer := 0;
    part     text;
BEGIN
    WHILE month <= to_month LOOP
        part := format('%s_y%sm%s', parent, to_char(month, 'YYYY'), to_char(month, 'MM'));
        IF to_regclass(part) IS NULL THEN
            EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS)', part, parent);
            EXECUTE format(
                'WITH moved AS (DELETE FROM %I WHERE ts >= %L AND ts < %L RETURNING *) '
                'INSERT INTO %I SELECT * FROM moved',
                parent || '_default', month, (month + interval '1 month')::date, part);
            EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                           parent, part, month, (month + interval '1 month')::date);
            created := created + 1;
        END IF;
        month := (month + interval '1 month')::date;
    END LOOP;
    RETURN created;
END $$;

SELECT stockpulse_ensure_partitions('demand_ledger', (now() - interval '25 months')::date,
                                    (now() + interval '3 months')::date);
SELECT stockpulse_ensure_partitions('stock_history', (now() - interval '25 months')::date,
                                    (now() + interval '3 months')::date);

INSERT INTO stockpulse_meta (key, value) VALUES ('timeseries_backend', 'partitions');
