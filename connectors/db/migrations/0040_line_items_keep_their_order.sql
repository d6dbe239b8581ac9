-- A line item id is one line of one order, of one variant. The upsert keyed by it took any
-- order's body as an edit of that line: an order reusing another's line item id for another
-- variant rewrote the first order's quantity (its SKU gained units it never sold, the second
-- SKU got none; an outside test). Such a body is refused, so it is dead-lettered with its
-- reason. Otherwise as in migration 0026.
CREATE OR REPLACE FUNCTION stockpulse_apply_sale_line(
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
    -- A line item is one line of one order, of one variant, for good: a body that gives its id
    -- to another order or variant is wrong, and applying it would move the line's units.
    IF EXISTS (SELECT 1 FROM order_lines
                WHERE shop = p_shop AND line_item_id = p_line_item_id
                  AND (order_id <> p_order_id OR variant_id IS DISTINCT FROM p_variant_id)) THEN
        RAISE EXCEPTION 'line item % is already a line of another order or variant',
            p_line_item_id USING ERRCODE = 'integrity_constraint_violation';
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
