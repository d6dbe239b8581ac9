-- What a line counts is what the customer kept. Shopify documents a line's current quantity
-- as "the number of units ordered, excluding refunded and removed units": order edits and
-- every refund. But a refund webhook can arrive before or without the order update that
-- lowers the current quantity, and a refund without a restock (goodwill, damaged goods) leaves
-- the sale counted here. So a line counts
--     least(current + units refunded without restock, ordered - units refunded with restock)
-- which subtracts each restocked refund exactly once, whichever of the two arrived first.
ALTER TABLE order_lines ADD COLUMN ordered_quantity integer;

CREATE OR REPLACE FUNCTION stockpulse_recount_line(p_shop text, p_line_item_id bigint, p_cause text)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    line             order_lines%ROWTYPE;
    restocked_units  integer;
    kept_units       integer;
    net_units        integer;
    net_rev          numeric(16, 2);
BEGIN
    SELECT * INTO line FROM order_lines
     WHERE shop = p_shop AND line_item_id = p_line_item_id FOR UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;  -- a refund ahead of its order: counted when the order arrives
    END IF;
    SELECT coalesce(sum(r.quantity) FILTER (WHERE r.restocked), 0),
           coalesce(sum(r.quantity) FILTER (WHERE NOT r.restocked), 0)
      INTO restocked_units, kept_units
      FROM refund_lines r
     WHERE r.shop = p_shop AND r.line_item_id = p_line_item_id;
    IF line.cancelled OR line.test OR line.variant_id IS NULL THEN
        net_units := 0;
    ELSE
        net_units := greatest(
            least(line.quantity + kept_units,
                  coalesce(line.ordered_quantity, line.quantity) - restocked_units),
            0);
    END IF;
    net_rev := net_units * line.unit_price;
    IF net_units = line.counted_units AND net_rev = line.counted_revenue THEN
        RETURN NULL;
    END IF;
    UPDATE order_lines SET counted_units = net_units, counted_revenue = net_rev
     WHERE shop = p_shop AND line_item_id = p_line_item_id;
    INSERT INTO daily_demand AS d (shop, variant_id, day, units, revenue)
    VALUES (p_shop, line.variant_id, line.day, net_units - line.counted_units,
            net_rev - line.counted_revenue)
    ON CONFLICT (shop, variant_id, day) DO UPDATE
       SET units = d.units + excluded.units, revenue = d.revenue + excluded.revenue;
    INSERT INTO demand_ledger (shop, variant_id, line_item_id, ts, units_delta, revenue_delta, cause)
    VALUES (p_shop, line.variant_id, p_line_item_id, line.ordered_at,
            net_units - line.counted_units, net_rev - line.counted_revenue, p_cause);
    RETURN line.variant_id;
END $$;

DROP FUNCTION stockpulse_apply_sale_line(
    text, bigint, bigint, bigint, bigint, text, text, integer, numeric, timestamptz, boolean,
    boolean, text, timestamptz);

CREATE FUNCTION stockpulse_apply_sale_line(
    p_shop text, p_line_item_id bigint, p_order_id bigint, p_variant_id bigint,
    p_product_id bigint, p_sku text, p_title text, p_quantity integer, p_price numeric,
    p_ordered_at timestamptz, p_cancelled boolean, p_test boolean, p_cause text,
    p_version timestamptz, p_ordered_quantity integer)
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
                                  ordered_quantity)
    VALUES (p_shop, p_line_item_id, p_order_id, p_variant_id, p_ordered_at,
            (p_ordered_at AT TIME ZONE tz)::date, p_quantity, p_price, p_cancelled, p_test, v,
            p_ordered_quantity)
    ON CONFLICT (shop, line_item_id) DO UPDATE
       SET cancelled = l.cancelled OR excluded.cancelled,
           quantity = CASE WHEN excluded.version > l.version OR l.version IS NULL
                           THEN excluded.quantity ELSE l.quantity END,
           ordered_quantity = CASE WHEN excluded.version > l.version OR l.version IS NULL
                                   THEN coalesce(excluded.ordered_quantity, l.ordered_quantity)
                                   ELSE coalesce(l.ordered_quantity, excluded.ordered_quantity)
                              END,
           version = greatest(l.version, excluded.version);
    RETURN stockpulse_recount_line(p_shop, p_line_item_id, p_cause);
END $$;
