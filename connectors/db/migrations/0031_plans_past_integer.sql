-- Every stock level is within ±1e9 and every order line within 1e6 units, but a SKU's stock
-- summed over its locations, and the reorder quantity of a day of huge orders, are not:
-- stored as integer they failed every forecast round of their shop.
ALTER TABLE sku_plans ALTER COLUMN stock TYPE bigint, ALTER COLUMN reorder_quantity TYPE bigint;

-- A SKU whose plan could not be computed or stored, with the reason: the worker plans the
-- shop's other SKUs without it and tries it again with the next round that includes it. A
-- plan stored later clears the row. Counted in /metrics (stockpulse_plan_failures).
CREATE TABLE plan_failures (
    shop        text NOT NULL REFERENCES shops (domain) ON DELETE CASCADE,
    variant_id  bigint NOT NULL,
    reason      text NOT NULL,
    failed_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (shop, variant_id)
);
