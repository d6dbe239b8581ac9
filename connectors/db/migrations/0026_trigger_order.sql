-- Shopify's updated_at has whole seconds, and its retries carry the original payload for up
-- to four hours. Two changes in one second tied, and only the one applied last (stock) or
-- first (order lines, products) counted, whichever was right; a retry of the older one, once
-- the inbox had forgotten its event id, could win the tie again. X-Shopify-Triggered-At is
-- sub-second and the same on every retry (Shopify says to order by it), so it now breaks
-- ties: the later trigger wins, the same trigger (a retry) changes nothing, and without one
-- (the backfill and the hourly reconciliation, read from the API) the old rule stands.
ALTER TABLE inventory_levels ADD COLUMN triggered_at timestamptz;
ALTER TABLE order_lines ADD COLUMN triggered_at timestamptz;
ALTER TABLE variants ADD COLUMN triggered_at timestamptz;

-- Whether a change of version (ts, trigger) passes one at (held_ts, held_trigger), both of the
-- same whole second: only with both triggers known and the new one later.
CREATE FUNCTION stockpulse_later_trigger(p_trigger timestamptz, p_held timestamptz)
RETURNS boolean LANGUAGE sql IMMUTABLE AS $$
    SELECT p_trigger IS NOT NULL AND p_held IS NOT NULL AND p_trigger > p_held
$$;

DROP FUNCTION stockpulse_apply_stock(text, bigint, bigint, integer, timestamptz);
CREATE FUNCTION stockpulse_apply_stock(
    p_shop text, p_inventory_item_id bigint, p_location_id bigint, p_available integer,
    p_updated_at timestamptz, p_triggered_at timestamptz DEFAULT NULL)
RETURNS SETOF bigint LANGUAGE plpgsql AS $$
DECLARE
    -- Not named ts: the ON CONFLICT target names stock_history's ts column.
    bounded_ts timestamptz := stockpulse_bounded_ts(p_updated_at);
BEGIN
    IF NOT EXISTS (SELECT 1 FROM shops WHERE domain = p_shop) THEN
        RETURN;
    END IF;
    INSERT INTO inventory_levels AS l (shop, inventory_item_id, location_id, available,
                                       updated_at, triggered_at)
    VALUES (p_shop, p_inventory_item_id, p_location_id, p_available, bounded_ts, p_triggered_at)
    ON CONFLICT (shop, inventory_item_id, location_id) DO UPDATE
       SET available = excluded.available, updated_at = excluded.updated_at,
           triggered_at = excluded.triggered_at
     WHERE l.updated_at < excluded.updated_at
        OR (l.updated_at = excluded.updated_at
            -- A later trigger is kept even with the same figure, so that a late retry of an
            -- event between the two cannot pass it.
            AND (stockpulse_later_trigger(excluded.triggered_at, l.triggered_at)
                 OR ((excluded.triggered_at IS NULL OR l.triggered_at IS NULL)
                     AND l.available IS DISTINCT FROM excluded.available)));
    IF NOT FOUND THEN
        RETURN;  -- stale, a retry, or the same figure
    END IF;
    INSERT INTO stock_history (shop, inventory_item_id, location_id, available, ts)
    VALUES (p_shop, p_inventory_item_id, p_location_id, p_available, bounded_ts)
    ON CONFLICT (shop, inventory_item_id, location_id, ts) DO UPDATE
       SET available = excluded.available;
    RETURN QUERY SELECT v.variant_id FROM variants v
                  WHERE v.shop = p_shop AND v.inventory_item_id = p_inventory_item_id;
END $$;

DROP FUNCTION stockpulse_apply_sale_line(
    text, bigint, bigint, bigint, bigint, text, text, integer, numeric, timestamptz, boolean,
    boolean, text, timestamptz, integer);
CREATE FUNCTION stockpulse_apply_sale_line(
    p_shop text, p_line_item_id bigint, p_order_id bigint, p_variant_id bigint,
    p_product_id bigint, p_sku text, p_title text, p_quantity integer, p_price numeric,
    p_ordered_at timestamptz, p_cancelled boolean, p_test boolean, p_cause text,
    p_version timestamptz, p_ordered_quantity integer, p_triggered_at timestamptz DEFAULT NULL)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    tz text;
    v timestamptz := stockpulse_bounded_ts(p_version);
BEGIN
    SELECT timezone INTO tz FROM shops WHERE domain = p_shop;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    INSERT INTO variants (shop, variant_id, product_id, sku, product_title, price)
    VALUES (p_shop, p_variant_id, p_product_id, p_sku, p_title, p_price)
    ON CONFLICT (shop, variant_id) DO NOTHING;
    INSERT INTO order_lines AS l (shop, line_item_id, order_id, variant_id, ordered_at, day,
                                  quantity, unit_price, cancelled, test, version,
                                  ordered_quantity, triggered_at)
    VALUES (p_shop, p_line_item_id, p_order_id, p_variant_id, p_ordered_at,
            (p_ordered_at AT TIME ZONE tz)::date, p_quantity, p_price, p_cancelled, p_test, v,
            p_ordered_quantity, p_triggered_at)
    ON CONFLICT (shop, line_item_id) DO UPDATE
       SET cancelled = l.cancelled OR excluded.cancelled,
           quantity = CASE WHEN excluded.version > l.version OR l.version IS NULL
                             OR (excluded.version = l.version
                                 AND stockpulse_later_trigger(excluded.triggered_at, l.triggered_at))
                           THEN excluded.quantity ELSE l.quantity END,
           ordered_quantity = CASE WHEN excluded.version > l.version OR l.version IS NULL
                                   THEN coalesce(excluded.ordered_quantity, l.ordered_quantity)
                                   ELSE coalesce(l.ordered_quantity, excluded.ordered_quantity)
                              END,
           triggered_at = CASE WHEN excluded.version > l.version OR l.version IS NULL
                                 OR (excluded.version = l.version
                                     AND stockpulse_later_trigger(excluded.triggered_at,
                                                                  l.triggered_at))
                               THEN excluded.triggered_at ELSE l.triggered_at END,
           version = greatest(l.version, excluded.version);
    RETURN stockpulse_recount_line(p_shop, p_line_item_id, p_cause);
END $$;

DROP FUNCTION stockpulse_apply_variant(
    text, bigint, bigint, text, text, text, bigint, numeric, boolean, timestamptz);
CREATE FUNCTION stockpulse_apply_variant(
    p_shop text, p_variant_id bigint, p_product_id bigint, p_sku text, p_product_title text,
    p_variant_title text, p_inventory_item_id bigint, p_price numeric, p_tracked boolean,
    p_updated_at timestamptz, p_triggered_at timestamptz DEFAULT NULL)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    applied bigint;
    ts timestamptz := stockpulse_bounded_ts(p_updated_at);
BEGIN
    IF NOT EXISTS (SELECT 1 FROM shops WHERE domain = p_shop) THEN
        RETURN NULL;
    END IF;
    INSERT INTO variants AS v (shop, variant_id, product_id, sku, product_title, variant_title,
                               inventory_item_id, price, tracked, updated_at, triggered_at)
    VALUES (p_shop, p_variant_id, p_product_id, p_sku, p_product_title, p_variant_title,
            p_inventory_item_id, p_price, p_tracked, ts, p_triggered_at)
    ON CONFLICT (shop, variant_id) DO UPDATE SET
        product_id = excluded.product_id, sku = excluded.sku,
        product_title = excluded.product_title, variant_title = excluded.variant_title,
        inventory_item_id = excluded.inventory_item_id, price = excluded.price,
        tracked = excluded.tracked, deleted = false, updated_at = excluded.updated_at,
        triggered_at = excluded.triggered_at
     WHERE v.updated_at IS NULL OR v.updated_at < excluded.updated_at
        OR (v.updated_at = excluded.updated_at
            AND stockpulse_later_trigger(excluded.triggered_at, v.triggered_at))
    RETURNING variant_id INTO applied;
    RETURN applied;
END $$;
