-- The write path as server-side functions: one round trip per event, and a whole batch of them
-- goes out in one pipeline. Each function is idempotent and order-safe on its own.

-- Recompute one line item's net demand and apply the difference to daily_demand and the ledger.
-- Returns the variant whose numbers changed, or NULL when nothing changed.
CREATE OR REPLACE FUNCTION stockpulse_recount_line(p_shop text, p_line_item_id bigint, p_cause text)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    line             order_lines%ROWTYPE;
    restocked_units  integer;
    net_units        integer;
    net_rev          numeric(16, 2);
BEGIN
    SELECT * INTO line FROM order_lines
     WHERE shop = p_shop AND line_item_id = p_line_item_id FOR UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;  -- a refund ahead of its order: counted when the order arrives
    END IF;
    SELECT coalesce(sum(r.quantity), 0) INTO restocked_units FROM refund_lines r
     WHERE r.shop = p_shop AND r.line_item_id = p_line_item_id AND r.restocked;
    IF line.cancelled OR line.test OR line.variant_id IS NULL THEN
        net_units := 0;
    ELSE
        net_units := greatest(line.quantity - restocked_units, 0);
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

-- An order line as seen in orders/create|updated|cancelled. Cancellation is sticky: a late
-- orders/create never revives a cancelled line. Unknown shops are ignored (NULL).
CREATE OR REPLACE FUNCTION stockpulse_apply_sale_line(
    p_shop text, p_line_item_id bigint, p_order_id bigint, p_variant_id bigint,
    p_product_id bigint, p_sku text, p_title text, p_quantity integer, p_price numeric,
    p_ordered_at timestamptz, p_cancelled boolean, p_test boolean, p_cause text)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    tz text;
BEGIN
    SELECT timezone INTO tz FROM shops WHERE domain = p_shop;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    INSERT INTO variants (shop, variant_id, product_id, sku, product_title, price)
    VALUES (p_shop, p_variant_id, p_product_id, p_sku, p_title, p_price)
    ON CONFLICT (shop, variant_id) DO NOTHING;
    INSERT INTO order_lines (shop, line_item_id, order_id, variant_id, ordered_at, day, quantity,
                             unit_price, cancelled, test)
    VALUES (p_shop, p_line_item_id, p_order_id, p_variant_id, p_ordered_at,
            (p_ordered_at AT TIME ZONE tz)::date, p_quantity, p_price, p_cancelled, p_test)
    ON CONFLICT (shop, line_item_id) DO UPDATE
       SET cancelled = order_lines.cancelled OR excluded.cancelled;
    RETURN stockpulse_recount_line(p_shop, p_line_item_id, p_cause);
END $$;

-- A refund line; only restocked units stop counting as demand.
CREATE OR REPLACE FUNCTION stockpulse_apply_refund_line(
    p_shop text, p_refund_id bigint, p_line_item_id bigint, p_quantity integer,
    p_restocked boolean, p_created_at timestamptz, p_cause text)
RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM shops WHERE domain = p_shop) THEN
        RETURN NULL;
    END IF;
    INSERT INTO refund_lines (shop, refund_id, line_item_id, quantity, restocked, created_at)
    VALUES (p_shop, p_refund_id, p_line_item_id, p_quantity, p_restocked, p_created_at)
    ON CONFLICT (shop, refund_id, line_item_id) DO NOTHING;
    RETURN stockpulse_recount_line(p_shop, p_line_item_id, p_cause);
END $$;

-- An absolute stock level; an update older than the stored one changes nothing. Returns the
-- variants stocked by that inventory item when the level changed.
CREATE OR REPLACE FUNCTION stockpulse_apply_stock(
    p_shop text, p_inventory_item_id bigint, p_location_id bigint, p_available integer,
    p_updated_at timestamptz)
RETURNS SETOF bigint LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM shops WHERE domain = p_shop) THEN
        RETURN;
    END IF;
    INSERT INTO inventory_levels AS l (shop, inventory_item_id, location_id, available, updated_at)
    VALUES (p_shop, p_inventory_item_id, p_location_id, p_available, p_updated_at)
    ON CONFLICT (shop, inventory_item_id, location_id) DO UPDATE
       SET available = excluded.available, updated_at = excluded.updated_at
     WHERE l.updated_at < excluded.updated_at;
    IF NOT FOUND THEN
        RETURN;  -- stale or repeated
    END IF;
    INSERT INTO stock_history (shop, inventory_item_id, location_id, available, ts)
    VALUES (p_shop, p_inventory_item_id, p_location_id, p_available, p_updated_at)
    ON CONFLICT DO NOTHING;
    RETURN QUERY SELECT v.variant_id FROM variants v
                  WHERE v.shop = p_shop AND v.inventory_item_id = p_inventory_item_id;
END $$;

-- Product data; an older payload never overwrites a newer one. Returns the variant when applied.
CREATE OR REPLACE FUNCTION stockpulse_apply_variant(
    p_shop text, p_variant_id bigint, p_product_id bigint, p_sku text, p_product_title text,
    p_variant_title text, p_inventory_item_id bigint, p_price numeric, p_tracked boolean,
    p_updated_at timestamptz)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    applied bigint;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM shops WHERE domain = p_shop) THEN
        RETURN NULL;
    END IF;
    INSERT INTO variants AS v (shop, variant_id, product_id, sku, product_title, variant_title,
                               inventory_item_id, price, tracked, updated_at)
    VALUES (p_shop, p_variant_id, p_product_id, p_sku, p_product_title, p_variant_title,
            p_inventory_item_id, p_price, p_tracked, p_updated_at)
    ON CONFLICT (shop, variant_id) DO UPDATE SET
        product_id = excluded.product_id, sku = excluded.sku,
        product_title = excluded.product_title, variant_title = excluded.variant_title,
        inventory_item_id = excluded.inventory_item_id, price = excluded.price,
        tracked = excluded.tracked, deleted = false, updated_at = excluded.updated_at
     WHERE v.updated_at IS NULL OR v.updated_at < excluded.updated_at
    RETURNING variant_id INTO applied;
    RETURN applied;
END $$;
