-- Core tables. Every table is scoped by shop (the myshopify domain) and every query filters on it.

CREATE TABLE shops (
    domain          text PRIMARY KEY,
    name            text,
    timezone        text NOT NULL DEFAULT 'UTC',   -- IANA name; "today" and daily buckets use it
    currency        text,
    country_code    text,
    installed_at    timestamptz NOT NULL DEFAULT now(),
    uninstalled_at  timestamptz
);

CREATE TABLE variants (
    shop               text NOT NULL REFERENCES shops (domain) ON DELETE CASCADE,
    variant_id         bigint NOT NULL,
    product_id         bigint,
    sku                text,
    product_title      text,
    variant_title      text,
    inventory_item_id  bigint,
    price              numeric(14, 2),
    tracked            boolean NOT NULL DEFAULT true,
    deleted            boolean NOT NULL DEFAULT false,
    -- Shopify's updated_at of the product payload applied last; NULL while the variant is only
    -- known from order line items, so any product payload wins over those guesses.
    updated_at         timestamptz,
    PRIMARY KEY (shop, variant_id)
);
CREATE INDEX variants_inventory_item ON variants (shop, inventory_item_id);

CREATE TABLE inventory_levels (
    shop               text NOT NULL REFERENCES shops (domain) ON DELETE CASCADE,
    inventory_item_id  bigint NOT NULL,
    location_id        bigint NOT NULL,
    available          integer,                 -- NULL when Shopify does not track it
    updated_at         timestamptz NOT NULL,    -- an older update never overwrites a newer one
    PRIMARY KEY (shop, inventory_item_id, location_id)
);

-- One row per order line item: the state from which its demand is derived. Demand is never
-- incremented blindly; each change recomputes the line's net units and applies the difference,
-- which makes redelivery, replays and out-of-order events harmless.
CREATE TABLE order_lines (
    shop             text NOT NULL REFERENCES shops (domain) ON DELETE CASCADE,
    line_item_id     bigint NOT NULL,
    order_id         bigint NOT NULL,
    variant_id       bigint,                    -- NULL for custom items without a variant
    ordered_at       timestamptz NOT NULL,
    day              date NOT NULL,             -- ordered_at in the shop's time zone
    quantity         integer NOT NULL,
    unit_price       numeric(14, 2) NOT NULL DEFAULT 0,
    cancelled        boolean NOT NULL DEFAULT false,
    test             boolean NOT NULL DEFAULT false,
    counted_units    integer NOT NULL DEFAULT 0,  -- what this line contributes to daily_demand now
    counted_revenue  numeric(16, 2) NOT NULL DEFAULT 0,
    PRIMARY KEY (shop, line_item_id)
);
CREATE INDEX order_lines_variant_day ON order_lines (shop, variant_id, day);

CREATE TABLE refund_lines (
    shop          text NOT NULL REFERENCES shops (domain) ON DELETE CASCADE,
    refund_id     bigint NOT NULL,
    line_item_id  bigint NOT NULL,
    quantity      integer NOT NULL,
    restocked     boolean NOT NULL,   -- only restocked units stop counting as demand
    created_at    timestamptz,
    PRIMARY KEY (shop, refund_id, line_item_id)
);
CREATE INDEX refund_lines_line ON refund_lines (shop, line_item_id);

-- Net units sold per SKU and shop-local day. Maintained in the same transaction as order_lines,
-- on every backend, because live per-SKU numbers must be exact at once.
CREATE TABLE daily_demand (
    shop        text NOT NULL REFERENCES shops (domain) ON DELETE CASCADE,
    variant_id  bigint NOT NULL,
    day         date NOT NULL,
    units       integer NOT NULL DEFAULT 0,
    revenue     numeric(16, 2) NOT NULL DEFAULT 0,
    PRIMARY KEY (shop, variant_id, day)
);

-- Changed SKUs waiting to be published to stockpulse.updates; written in the same transaction as
-- the change, deleted once the broker acknowledged, so a crash in between only delays a message.
CREATE TABLE update_outbox (
    id           bigserial PRIMARY KEY,
    shop         text NOT NULL,
    variant_id   bigint NOT NULL,
    type         text NOT NULL,
    event_ids    text[] NOT NULL DEFAULT '{}',
    received_at  timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE stockpulse_meta (
    key    text PRIMARY KEY,
    value  text NOT NULL
);


-- Events that cannot be applied (bad data, a shop already erased). Kept for an operator to
-- inspect so one bad message never blocks its partition.
CREATE TABLE dead_letters (
    id          bigserial PRIMARY KEY,
    shop        text NOT NULL,
    event_id    text NOT NULL,
    kind        text NOT NULL,
    data        jsonb NOT NULL,
    error       text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
