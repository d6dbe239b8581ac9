-- A refund line belongs to the shop whose order holds its line item, as a stock level belongs
-- to the shop whose variant holds its item (0045). A shop's signed refund replayed under
-- another shop of the shared app and applied first kept the refund line, and the genuine
-- refund was dead-lettered: with a restock, the shop counted the refunded units as sold for
-- good (an outside test). Now a shop without the line is refused a refund for a line another
-- shop's order holds, and a shop with the line takes its refund over from a shop without.
CREATE OR REPLACE FUNCTION stockpulse_apply_refund_line(
    p_shop text, p_refund_id bigint, p_line_item_id bigint, p_quantity integer,
    p_restocked boolean, p_created_at timestamptz, p_cause text)
RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM shops WHERE domain = p_shop) THEN
        RETURN NULL;
    END IF;
    IF stockpulse_on_shared_app(p_shop) THEN
        IF EXISTS (SELECT 1 FROM order_lines
                    WHERE shop = p_shop AND line_item_id = p_line_item_id) THEN
            -- One row at most: shared rows' ids are unique across shops. The shop it is
            -- taken from has no such line, so nothing of its demand changes.
            DELETE FROM refund_lines r
             WHERE r.refund_id = p_refund_id AND r.line_item_id = p_line_item_id
               AND r.shared_app AND r.shop <> p_shop
               AND NOT EXISTS (SELECT 1 FROM order_lines o
                                WHERE o.shop = r.shop AND o.line_item_id = p_line_item_id);
        ELSIF EXISTS (SELECT 1 FROM order_lines
                       WHERE line_item_id = p_line_item_id AND shared_app
                         AND shop <> p_shop) THEN
            RAISE unique_violation USING
                MESSAGE = format('line item %s is held by another shop''s order',
                                 p_line_item_id),
                CONSTRAINT = 'refund_lines_global_line';
        END IF;
    END IF;
    INSERT INTO refund_lines (shop, refund_id, line_item_id, quantity, restocked, created_at)
    VALUES (p_shop, p_refund_id, p_line_item_id, p_quantity, p_restocked, p_created_at)
    ON CONFLICT (shop, refund_id, line_item_id) DO NOTHING;
    RETURN stockpulse_recount_line(p_shop, p_line_item_id, p_cause);
END $$;
