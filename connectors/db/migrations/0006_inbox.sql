-- Acknowledged means durable: the ingress commits every accepted webhook here before it answers
-- 200, whatever the broker keeps. A relay republishes what the worker has not finished, and
-- finished rows are pruned. The worker's write path is idempotent, so a second copy is harmless.
CREATE TABLE webhook_inbox (
    id             bigserial PRIMARY KEY,
    shop           text NOT NULL,
    topic          text NOT NULL,
    event_id       text NOT NULL,
    webhook_id     text NOT NULL,
    -- With the event id, tells a redelivery (same body, same signature) from another body sent
    -- under a reused event id, which must not be dropped as a duplicate.
    signature      text NOT NULL,
    triggered_at   text,
    api_version    text,
    payload        text NOT NULL,         -- the validated, customer-data-free payload
    received_at    timestamptz NOT NULL DEFAULT now(),
    attempts       integer NOT NULL DEFAULT 0,  -- republishes by the relay
    published_at   timestamptz,                 -- last republish
    normalised_at  timestamptz                  -- the worker split it into per-SKU events
);
CREATE UNIQUE INDEX webhook_inbox_delivery ON webhook_inbox (shop, event_id, signature);
CREATE INDEX webhook_inbox_not_normalised ON webhook_inbox (id) WHERE normalised_at IS NULL;

-- The per-SKU events of a normalised webhook that are not applied yet. A webhook is finished
-- when it is normalised and none of its events is left here.
CREATE TABLE inbox_pending (
    inbox_id  bigint NOT NULL,
    seq       integer NOT NULL,
    PRIMARY KEY (inbox_id, seq)
);

-- Dead letters from every stage: a signed body that fails the payload models (kept without
-- customer data), an envelope the worker cannot split, an event the database refuses.
ALTER TABLE dead_letters
    ADD COLUMN stage text NOT NULL DEFAULT 'apply',
    ADD COLUMN topic text,
    ADD COLUMN replayed_at timestamptz;
CREATE INDEX dead_letters_open ON dead_letters (created_at) WHERE replayed_at IS NULL;

-- Shopify's ids are global: a line item, variant or inventory level belongs to one shop. A
-- captured body replayed under another installed shop's domain (same app secret) then fails
-- here instead of writing that shop's data.
CREATE UNIQUE INDEX order_lines_global_line ON order_lines (line_item_id);
CREATE UNIQUE INDEX variants_global_variant ON variants (variant_id);
CREATE UNIQUE INDEX inventory_levels_global_level ON inventory_levels (inventory_item_id, location_id);
CREATE UNIQUE INDEX refund_lines_global_line ON refund_lines (refund_id, line_item_id);

-- A far-future updated_at must never freeze a row: clamp on the way in, and release rows that
-- an earlier version let freeze.
UPDATE inventory_levels SET updated_at = now() WHERE updated_at > now() + interval '5 minutes';
UPDATE variants SET updated_at = now() WHERE updated_at > now() + interval '5 minutes';

CREATE OR REPLACE FUNCTION stockpulse_bounded_ts(p_ts timestamptz) RETURNS timestamptz
LANGUAGE sql STABLE AS $$
    SELECT least(p_ts, now() + interval '5 minutes')
$$;

CREATE OR REPLACE FUNCTION stockpulse_apply_stock(
    p_shop text, p_inventory_item_id bigint, p_location_id bigint, p_available integer,
    p_updated_at timestamptz)
RETURNS SETOF bigint LANGUAGE plpgsql AS $$
DECLARE
    ts timestamptz := stockpulse_bounded_ts(p_updated_at);
BEGIN
    IF NOT EXISTS (SELECT 1 FROM shops WHERE domain = p_shop) THEN
        RETURN;
    END IF;
    INSERT INTO inventory_levels AS l (shop, inventory_item_id, location_id, available, updated_at)
    VALUES (p_shop, p_inventory_item_id, p_location_id, p_available, ts)
    ON CONFLICT (shop, inventory_item_id, location_id) DO UPDATE
       SET available = excluded.available, updated_at = excluded.updated_at
     WHERE l.updated_at < excluded.updated_at;
    IF NOT FOUND THEN
        RETURN;  -- stale or repeated
    END IF;
    INSERT INTO stock_history (shop, inventory_item_id, location_id, available, ts)
    VALUES (p_shop, p_inventory_item_id, p_location_id, p_available, ts)
    ON CONFLICT DO NOTHING;
    RETURN QUERY SELECT v.variant_id FROM variants v
                  WHERE v.shop = p_shop AND v.inventory_item_id = p_inventory_item_id;
END $$;

CREATE OR REPLACE FUNCTION stockpulse_apply_variant(
    p_shop text, p_variant_id bigint, p_product_id bigint, p_sku text, p_product_title text,
    p_variant_title text, p_inventory_item_id bigint, p_price numeric, p_tracked boolean,
    p_updated_at timestamptz)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    applied bigint;
    ts timestamptz := stockpulse_bounded_ts(p_updated_at);
BEGIN
    IF NOT EXISTS (SELECT 1 FROM shops WHERE domain = p_shop) THEN
        RETURN NULL;
    END IF;
    INSERT INTO variants AS v (shop, variant_id, product_id, sku, product_title, variant_title,
                               inventory_item_id, price, tracked, updated_at)
    VALUES (p_shop, p_variant_id, p_product_id, p_sku, p_product_title, p_variant_title,
            p_inventory_item_id, p_price, p_tracked, ts)
    ON CONFLICT (shop, variant_id) DO UPDATE SET
        product_id = excluded.product_id, sku = excluded.sku,
        product_title = excluded.product_title, variant_title = excluded.variant_title,
        inventory_item_id = excluded.inventory_item_id, price = excluded.price,
        tracked = excluded.tracked, deleted = false, updated_at = excluded.updated_at
     WHERE v.updated_at IS NULL OR v.updated_at < excluded.updated_at
    RETURNING variant_id INTO applied;
    RETURN applied;
END $$;
