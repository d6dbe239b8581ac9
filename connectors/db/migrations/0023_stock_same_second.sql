-- Shopify's updated_at has whole seconds, so two changes of one level in the same second (two
-- orders, a sale and a restock) carry the same timestamp. Only a strictly newer one used to win,
-- so the second change was dropped until the hourly reconciliation. Now, on a tie, the figure
-- applied last wins: deliveries of one SKU are applied in the order they came, and Shopify
-- delivers mostly in order. A redelivery of the same event carries the same figure and changes
-- nothing.
CREATE OR REPLACE FUNCTION stockpulse_apply_stock(
    p_shop text, p_inventory_item_id bigint, p_location_id bigint, p_available integer,
    p_updated_at timestamptz)
RETURNS SETOF bigint LANGUAGE plpgsql AS $$
DECLARE
    -- Not named ts: the ON CONFLICT target names stock_history's ts column.
    bounded_ts timestamptz := stockpulse_bounded_ts(p_updated_at);
BEGIN
    IF NOT EXISTS (SELECT 1 FROM shops WHERE domain = p_shop) THEN
        RETURN;
    END IF;
    INSERT INTO inventory_levels AS l (shop, inventory_item_id, location_id, available, updated_at)
    VALUES (p_shop, p_inventory_item_id, p_location_id, p_available, bounded_ts)
    ON CONFLICT (shop, inventory_item_id, location_id) DO UPDATE
       SET available = excluded.available, updated_at = excluded.updated_at
     WHERE l.updated_at < excluded.updated_at
        OR (l.updated_at = excluded.updated_at AND l.available IS DISTINCT FROM excluded.available);
    IF NOT FOUND THEN
        RETURN;  -- stale, or repeated with the same figure
    END IF;
    INSERT INTO stock_history (shop, inventory_item_id, location_id, available, ts)
    VALUES (p_shop, p_inventory_item_id, p_location_id, p_available, bounded_ts)
    ON CONFLICT (shop, inventory_item_id, location_id, ts) DO UPDATE
       SET available = excluded.available;
    RETURN QUERY SELECT v.variant_id FROM variants v
                  WHERE v.shop = p_shop AND v.inventory_item_id = p_inventory_item_id;
END $$;
