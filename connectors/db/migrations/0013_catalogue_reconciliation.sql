-- The shop's locations, for naming stock by place.
CREATE TABLE locations (
    shop         text NOT NULL REFERENCES shops (domain) ON DELETE CASCADE,
    location_id  bigint NOT NULL,
    name         text NOT NULL,
    active       boolean NOT NULL DEFAULT true,
    synced_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (shop, location_id)
);

-- What the backfill is reading, for its progress on the dashboard.
ALTER TABLE backfills ADD COLUMN phase text;
ALTER TABLE backfills ADD COLUMN objects_total bigint;
ALTER TABLE backfills ADD COLUMN objects_read bigint NOT NULL DEFAULT 0;
-- Where the orders export's result is (Shopify keeps it 7 days): a resumed backfill reads the
-- same file again and skips the orders it applied.
ALTER TABLE backfills ADD COLUMN export_url text;

-- Each pass comparing the shop with Shopify, and every correction it made: how often webhooks
-- were missed, in numbers an operator can check.
CREATE TABLE reconciliations (
    id              bigserial PRIMARY KEY,
    shop            text NOT NULL REFERENCES shops (domain) ON DELETE CASCADE,
    status          text NOT NULL CHECK (status IN ('running', 'done', 'failed')),
    orders_since    timestamptz NOT NULL,
    started_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,
    levels_checked  integer NOT NULL DEFAULT 0,
    orders_checked  integer NOT NULL DEFAULT 0,
    corrections     integer NOT NULL DEFAULT 0,
    error           text
);
CREATE INDEX reconciliations_shop ON reconciliations (shop, started_at DESC);
-- One pass per shop at a time, however many workers look for due shops.
CREATE UNIQUE INDEX reconciliations_one_running ON reconciliations (shop)
    WHERE status = 'running';

CREATE TABLE reconciliation_corrections (
    id                 bigserial PRIMARY KEY,
    reconciliation_id  bigint NOT NULL REFERENCES reconciliations (id) ON DELETE CASCADE,
    shop               text NOT NULL REFERENCES shops (domain) ON DELETE CASCADE,
    kind               text NOT NULL CHECK (kind IN ('stock_level', 'order_line', 'variant')),
    subject            text NOT NULL,
    old_value          text,
    new_value          text,
    reason             text NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX reconciliation_corrections_shop ON reconciliation_corrections (shop, id DESC);
