-- What Shopify's Admin API lists for a shop, read with that shop's own token, is that shop's.
-- A body of one shop replayed under another of the shared app before the genuine one reached
-- us (only with a captured body) kept its variant or order lines for the other shop, and the
-- genuine webhooks were dead-lettered for good (an outside test). The backfill and the hourly
-- reconciliation read the shop's catalogue and orders from the API: before applying them,
-- another shared-app shop's rows with the same variant or line item ids are removed, its
-- demand for them reversed first, so the shop's own data can land and its letters replay.
-- Levels and refunds then follow their variant and line (0045, 0046).

-- Another shop's line item: its counted units are taken back out of its demand (as a
-- cancellation would), then the line and its refunds go.
CREATE FUNCTION stockpulse_disown_line(p_owner text, p_line_item_id bigint)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    other text;
    removed integer := 0;
BEGIN
    FOR other IN SELECT shop FROM order_lines
                  WHERE line_item_id = p_line_item_id AND shared_app AND shop <> p_owner LOOP
        UPDATE order_lines SET cancelled = true
         WHERE shop = other AND line_item_id = p_line_item_id;
        PERFORM stockpulse_recount_line(other, p_line_item_id, 'reclaimed by its shop');
        DELETE FROM refund_lines WHERE shop = other AND line_item_id = p_line_item_id;
        DELETE FROM order_lines WHERE shop = other AND line_item_id = p_line_item_id;
        removed := removed + 1;
    END LOOP;
    RETURN removed;
END $$;

-- Another shop's variant: its lines of it (as above), its stock of the variant's item when no
-- other variant of that shop holds the item, its plan, and the variant.
CREATE FUNCTION stockpulse_disown_variant(p_owner text, p_variant_id bigint)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    held record;
    line bigint;
    removed integer := 0;
BEGIN
    FOR held IN SELECT shop, inventory_item_id FROM variants
                 WHERE variant_id = p_variant_id AND shared_app AND shop <> p_owner LOOP
        FOR line IN SELECT line_item_id FROM order_lines
                     WHERE shop = held.shop AND variant_id = p_variant_id LOOP
            removed := removed + stockpulse_disown_line(p_owner, line);
        END LOOP;
        IF held.inventory_item_id IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM variants
                            WHERE shop = held.shop AND variant_id <> p_variant_id
                              AND inventory_item_id = held.inventory_item_id) THEN
            DELETE FROM inventory_levels
             WHERE shop = held.shop AND inventory_item_id = held.inventory_item_id;
            IF FOUND THEN
                DELETE FROM stock_history
                 WHERE shop = held.shop AND inventory_item_id = held.inventory_item_id;
            END IF;
        END IF;
        -- Its plan of a product it never had goes too; its alerts stay, as what was sent.
        DELETE FROM sku_plans WHERE shop = held.shop AND variant_id = p_variant_id;
        DELETE FROM variants WHERE shop = held.shop AND variant_id = p_variant_id;
        removed := removed + 1;
    END LOOP;
    RETURN removed;
END $$;

-- The shop's own ids, as the Admin API listed them: how many rows of other shops went.
CREATE FUNCTION stockpulse_reclaim(p_owner text, p_variant_ids bigint[], p_line_item_ids bigint[])
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    id bigint;
    removed integer := 0;
BEGIN
    IF NOT stockpulse_on_shared_app(p_owner) THEN
        RETURN 0;  -- its rows are not on the shared list, and clash with no other shop's
    END IF;
    -- One look in each global index for the whole batch; nearly always nothing is found.
    FOR id IN SELECT DISTINCT variant_id FROM variants
               WHERE variant_id = ANY(p_variant_ids) AND shared_app AND shop <> p_owner LOOP
        removed := removed + stockpulse_disown_variant(p_owner, id);
    END LOOP;
    FOR id IN SELECT DISTINCT line_item_id FROM order_lines
               WHERE line_item_id = ANY(p_line_item_ids) AND shared_app AND shop <> p_owner LOOP
        removed := removed + stockpulse_disown_line(p_owner, id);
    END LOOP;
    RETURN removed;
END $$;
