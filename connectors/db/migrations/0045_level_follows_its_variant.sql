-- A stock level belongs to the shop whose variant holds its inventory item. Shops on this
-- deployment's app share a signing secret, so one shop's signed inventory_levels/update can be
-- replayed under another's domain, and its body does not say whose it is. Ids being unique
-- across those shops (0039), whichever copy was applied first kept the level: a replay
-- applied before the genuine update (a backlog, or the two partitions the other way round)
-- took the shop's stock, and the genuine update was dead-lettered, again on every replay of
-- the letter (an outside test's replay, and one CI run). Inventory item ids are Shopify's and
-- unique, so a shop whose variant holds the item is its owner:
-- - a shop without such a variant is refused a level another shop's variant holds (as a
--   clash of ids: the update is dead-lettered under the shop it was sent for);
-- - a shop with one takes the level over from a shop without, that history and all.
-- Only rows signed by the shared secret are compared: a shop on an app of its own signs its
-- own bodies, and could otherwise name any item to claim it.
CREATE INDEX variants_shared_inventory_item ON variants (inventory_item_id) WHERE shared_app;

CREATE OR REPLACE FUNCTION stockpulse_apply_stock(
    p_shop text, p_inventory_item_id bigint, p_location_id bigint, p_available integer,
    p_updated_at timestamptz, p_triggered_at timestamptz DEFAULT NULL)
RETURNS SETOF bigint LANGUAGE plpgsql AS $$
DECLARE
    -- Not named ts: the ON CONFLICT target names stock_history's ts column.
    bounded_ts timestamptz := stockpulse_bounded_ts(p_updated_at);
    holds boolean;
    taken_from text;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM shops WHERE domain = p_shop) THEN
        RETURN;
    END IF;
    IF stockpulse_on_shared_app(p_shop) THEN
        holds := EXISTS (SELECT 1 FROM variants
                          WHERE shop = p_shop AND inventory_item_id = p_inventory_item_id);
        IF holds THEN
            -- One row at most: shared rows' ids are unique across shops.
            DELETE FROM inventory_levels l
             WHERE l.inventory_item_id = p_inventory_item_id
               AND l.location_id = p_location_id AND l.shared_app AND l.shop <> p_shop
               AND NOT EXISTS (SELECT 1 FROM variants v
                                WHERE v.shop = l.shop
                                  AND v.inventory_item_id = p_inventory_item_id)
            RETURNING l.shop INTO taken_from;
            -- Only then: a delete planned over every month's partition of the history costs
            -- more than the whole update.
            IF taken_from IS NOT NULL THEN
                DELETE FROM stock_history
                 WHERE shop = taken_from AND inventory_item_id = p_inventory_item_id
                   AND location_id = p_location_id;
            END IF;
        ELSIF EXISTS (SELECT 1 FROM variants
                       WHERE inventory_item_id = p_inventory_item_id AND shared_app
                         AND shop <> p_shop) THEN
            RAISE unique_violation USING
                MESSAGE = format('inventory item %s is held by another shop''s variant',
                                 p_inventory_item_id),
                CONSTRAINT = 'inventory_levels_global_level';
        END IF;
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
