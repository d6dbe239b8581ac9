-- A stock level Shopify no longer has: the item was disconnected from the location (or the
-- location deleted). inventory_levels/disconnect is not applied from webhooks (no timestamp
-- to order it by is known in its body), so the hourly reconciliation, whose export lists every
-- level of every item, removes a level it does not list, if the level has not changed since
-- the export began. Its location's history ends at zero: the old figure stops counting.
CREATE FUNCTION stockpulse_remove_level(
    p_shop text, p_inventory_item_id bigint, p_location_id bigint, p_unchanged_since timestamptz)
RETURNS SETOF bigint LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM inventory_levels
     WHERE shop = p_shop AND inventory_item_id = p_inventory_item_id
       AND location_id = p_location_id AND updated_at <= p_unchanged_since;
    IF NOT FOUND THEN
        RETURN;  -- gone already, or changed since the export began: a newer fact than it
    END IF;
    INSERT INTO stock_history (shop, inventory_item_id, location_id, available, ts)
    VALUES (p_shop, p_inventory_item_id, p_location_id, 0, greatest(now(), p_unchanged_since))
    ON CONFLICT (shop, inventory_item_id, location_id, ts) DO UPDATE SET available = 0;
    RETURN QUERY SELECT v.variant_id FROM variants v
                  WHERE v.shop = p_shop AND v.inventory_item_id = p_inventory_item_id;
END $$;
