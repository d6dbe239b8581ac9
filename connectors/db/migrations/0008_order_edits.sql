-- Order edits (orders/updated): a line's quantity is its current_quantity, and the order's
-- updated_at is the version of all its lines. A newer version's quantity wins; an older one
-- arriving late (an orders/create hours after an edit) never undoes it. A removed line is a
-- line whose current quantity is 0. Cancellation stays sticky.
ALTER TABLE order_lines ADD COLUMN version timestamptz;

DROP FUNCTION stockpulse_apply_sale_line(
    text, bigint, bigint, bigint, bigint, text, text, integer, numeric, timestamptz, boolean,
    boolean, text);

CREATE FUNCTION stockpulse_apply_sale_line(
    p_shop text, p_line_item_id bigint, p_order_id bigint, p_variant_id bigint,
    p_product_id bigint, p_sku text, p_title text, p_quantity integer, p_price numeric,
    p_ordered_at timestamptz, p_cancelled boolean, p_test boolean, p_cause text,
    p_version timestamptz)
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
                                  quantity, unit_price, cancelled, test, version)
    VALUES (p_shop, p_line_item_id, p_order_id, p_variant_id, p_ordered_at,
            (p_ordered_at AT TIME ZONE tz)::date, p_quantity, p_price, p_cancelled, p_test, v)
    ON CONFLICT (shop, line_item_id) DO UPDATE
       SET cancelled = l.cancelled OR excluded.cancelled,
           quantity = CASE WHEN excluded.version > l.version OR l.version IS NULL
                           THEN excluded.quantity ELSE l.quantity END,
           version = greatest(l.version, excluded.version);
    RETURN stockpulse_recount_line(p_shop, p_line_item_id, p_cause);
END $$;
