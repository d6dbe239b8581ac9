-- Time series on TimescaleDB: hypertables with compression and retention, and a continuous
-- aggregate of daily demand for long-range analytics. Same tables and columns as the plain
-- variant, so every query is shared; daily_demand (0001) stays the exact live rollup.

CREATE EXTENSION IF NOT EXISTS timescaledb;

CREATE TABLE demand_ledger (
    shop           text NOT NULL,
    variant_id     bigint NOT NULL,
    line_item_id   bigint NOT NULL,
    ts             timestamptz NOT NULL,
    units_delta    integer NOT NULL,
    revenue_delta  numeric(16, 2) NOT NULL,
    cause          text NOT NULL,
    recorded_at    timestamptz NOT NULL DEFAULT now()
);
SELECT create_hypertable('demand_ledger', 'ts', chunk_time_interval => interval '7 days');
CREATE INDEX demand_ledger_sku ON demand_ledger (shop, variant_id, ts);

CREATE TABLE stock_history (
    shop               text NOT NULL,
    inventory_item_id  bigint NOT NULL,
    location_id        bigint NOT NULL,
    available          integer,
    ts                 timestamptz NOT NULL,
    UNIQUE (shop, inventory_item_id, location_id, ts)   -- includes the time column, as required
);
SELECT create_hypertable('stock_history', 'ts', chunk_time_interval => interval '7 days');

ALTER TABLE demand_ledger SET (timescaledb.compress, timescaledb.compress_segmentby = 'shop, variant_id');
ALTER TABLE stock_history SET (timescaledb.compress,
                               timescaledb.compress_segmentby = 'shop, inventory_item_id');
SELECT add_compression_policy('demand_ledger', interval '30 days');
SELECT add_compression_policy('stock_history', interval '30 days');
SELECT add_retention_policy('demand_ledger', interval '3 years');
SELECT add_retention_policy('stock_history', interval '3 years');

CREATE MATERIALIZED VIEW demand_daily_utc WITH (timescaledb.continuous) AS
SELECT shop, variant_id, time_bucket('1 day', ts) AS day,
       sum(units_delta) AS units, sum(revenue_delta) AS revenue
  FROM demand_ledger
 GROUP BY shop, variant_id, time_bucket('1 day', ts)
WITH NO DATA;
SELECT add_continuous_aggregate_policy('demand_daily_utc', start_offset => interval '90 days',
                                       end_offset => interval '1 hour',
                                       schedule_interval => interval '15 minutes');

-- Chunks are managed by TimescaleDB; the maintenance hook is a no-op here.
CREATE FUNCTION stockpulse_ensure_partitions(parent text, from_month date, to_month date)
RETURNS integer LANGUAGE sql AS $$ SELECT 0 $$;

INSERT INTO stockpulse_meta (key, value) VALUES ('timeseries_backend', 'timescaledb');
