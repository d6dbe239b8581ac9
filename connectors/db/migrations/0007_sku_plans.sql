-- The latest forecast and inventory plan per SKU: the product's headline output, kept where the
-- truth lives so the dashboard, the JSON API, reports and alert rules read what was published
-- on stockpulse.forecasts. Stock and plans are per SKU summed over locations (per-location
-- plans are not modelled yet). Written by the worker's forecast round, which runs after every
-- batch that touches a SKU, when a shop's day closes and when a nightly run commits.
CREATE TABLE sku_plans (
    shop              text NOT NULL REFERENCES shops (domain) ON DELETE CASCADE,
    variant_id        bigint NOT NULL,
    first_day         date NOT NULL,          -- shop-local date of mean[1] (today)
    mean              real[] NOT NULL,
    lower             real[] NOT NULL,        -- 80 % interval
    upper             real[] NOT NULL,
    method            text NOT NULL,          -- combined | river | moving_average_7
    members           jsonb NOT NULL,         -- what made it: [{"model", "weight", "run_id"?}]
    confidence        text NOT NULL,
    mase              real,                   -- the SKU's recent accuracy (below 1 beats naive)
    stock             integer,
    days_of_cover     real,                   -- from the forecast; NULL: never runs out in 90 d
    stockout_date     date,
    safety_stock      real NOT NULL,
    reorder_point     real NOT NULL,
    reorder_quantity  integer NOT NULL,
    overstock         boolean NOT NULL,
    dead_stock_days   integer,
    abc_class         text,
    as_of             timestamptz NOT NULL,
    PRIMARY KEY (shop, variant_id)
);
