-- A deleted variant comes back only for an export newer than the one that found it gone
-- (0034 let any export's event revive it: a dead letter replayed days later, or a backfill
-- still reading an older export, could bring back a variant a later pass had rightly
-- deleted). Each export is known by the time its snapshot is certainly after, the same bound
-- both functions are given; a variant deleted some other way (products/delete) has no
-- gone_at and is never revived by a listing.
ALTER TABLE variants ADD COLUMN gone_at timestamptz;

DROP FUNCTION stockpulse_remove_variant(text, bigint, timestamptz);
CREATE FUNCTION stockpulse_remove_variant(
    p_shop text, p_variant_id bigint, p_unchanged_since timestamptz)
RETURNS SETOF bigint LANGUAGE sql AS $$
    UPDATE variants SET deleted = true, gone_at = p_unchanged_since
     WHERE shop = p_shop AND variant_id = p_variant_id AND NOT deleted
       AND coalesce(updated_at, first_seen_at) <= p_unchanged_since
    RETURNING variant_id;
$$;

DROP FUNCTION stockpulse_apply_variant(
    text, bigint, bigint, text, text, text, bigint, numeric, boolean, timestamptz, timestamptz,
    boolean);
CREATE FUNCTION stockpulse_apply_variant(
    p_shop text, p_variant_id bigint, p_product_id bigint, p_sku text, p_product_title text,
    p_variant_title text, p_inventory_item_id bigint, p_price numeric, p_tracked boolean,
    p_updated_at timestamptz, p_triggered_at timestamptz DEFAULT NULL,
    p_listed_since timestamptz DEFAULT NULL)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    applied bigint;
    revived boolean := false;
    ts timestamptz := stockpulse_bounded_ts(p_updated_at);
BEGIN
    IF NOT EXISTS (SELECT 1 FROM shops WHERE domain = p_shop) THEN
        RETURN NULL;
    END IF;
    IF p_listed_since IS NOT NULL THEN
        UPDATE variants SET deleted = false, gone_at = NULL
         WHERE shop = p_shop AND variant_id = p_variant_id AND deleted
           AND gone_at < p_listed_since
        RETURNING NOT deleted INTO revived;  -- as the trigger of 0025 left it
    END IF;
    INSERT INTO variants AS v (shop, variant_id, product_id, sku, product_title, variant_title,
                               inventory_item_id, price, tracked, updated_at, triggered_at)
    VALUES (p_shop, p_variant_id, p_product_id, p_sku, p_product_title, p_variant_title,
            p_inventory_item_id, p_price, p_tracked, ts, p_triggered_at)
    ON CONFLICT (shop, variant_id) DO UPDATE SET
        product_id = excluded.product_id, sku = excluded.sku,
        product_title = excluded.product_title, variant_title = excluded.variant_title,
        -- Every Shopify variant has an inventory item: a body without its id does not say it
        -- lost it, and stock stays linked.
        inventory_item_id = coalesce(excluded.inventory_item_id, v.inventory_item_id),
        price = excluded.price,
        tracked = excluded.tracked, deleted = false, gone_at = NULL,
        updated_at = excluded.updated_at, triggered_at = excluded.triggered_at
     WHERE v.updated_at IS NULL OR v.updated_at < excluded.updated_at
        OR (v.updated_at = excluded.updated_at
            AND stockpulse_later_trigger(excluded.triggered_at, v.triggered_at))
    RETURNING variant_id INTO applied;
    RETURN coalesce(applied, CASE WHEN coalesce(revived, false) THEN p_variant_id END);
END $$;
