-- Which shops share this deployment's app (migration 0039) can change: a shop connected with
-- an app of its own may install through the deployment's app later, and the other way round.
-- Its rows follow: off the shared list at once (that frees ids, it cannot clash); onto it
-- where no shop already on it holds the same id (one that does stays off, as before).
CREATE FUNCTION stockpulse_follow_shared_app(p_shop text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT stockpulse_on_shared_app(p_shop) THEN
        UPDATE variants SET shared_app = false WHERE shop = p_shop AND shared_app;
        UPDATE inventory_levels SET shared_app = false WHERE shop = p_shop AND shared_app;
        UPDATE order_lines SET shared_app = false WHERE shop = p_shop AND shared_app;
        UPDATE refund_lines SET shared_app = false WHERE shop = p_shop AND shared_app;
        RETURN;
    END IF;
    UPDATE variants r SET shared_app = true
     WHERE r.shop = p_shop AND NOT r.shared_app
       AND NOT EXISTS (SELECT 1 FROM variants o WHERE o.shared_app AND o.variant_id = r.variant_id);
    UPDATE inventory_levels r SET shared_app = true
     WHERE r.shop = p_shop AND NOT r.shared_app
       AND NOT EXISTS (SELECT 1 FROM inventory_levels o WHERE o.shared_app
                        AND o.inventory_item_id = r.inventory_item_id
                        AND o.location_id = r.location_id);
    UPDATE order_lines r SET shared_app = true
     WHERE r.shop = p_shop AND NOT r.shared_app
       AND NOT EXISTS (SELECT 1 FROM order_lines o WHERE o.shared_app
                        AND o.line_item_id = r.line_item_id);
    UPDATE refund_lines r SET shared_app = true
     WHERE r.shop = p_shop AND NOT r.shared_app
       AND NOT EXISTS (SELECT 1 FROM refund_lines o WHERE o.shared_app
                        AND o.refund_id = r.refund_id AND o.line_item_id = r.line_item_id);
END $$;

-- Only when a change of credentials moves the shop between the two: a token refresh, which
-- rewrites the same mode and secret, must not walk all of a shop's rows.
CREATE FUNCTION stockpulse_credentials_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    was_own boolean := TG_OP <> 'INSERT' AND OLD.mode IN ('client_credentials', 'static')
                       AND OLD.client_secret IS NOT NULL;
    is_own boolean := TG_OP <> 'DELETE' AND NEW.mode IN ('client_credentials', 'static')
                      AND NEW.client_secret IS NOT NULL;
BEGIN
    IF was_own IS DISTINCT FROM is_own THEN
        PERFORM stockpulse_follow_shared_app(CASE WHEN TG_OP = 'DELETE' THEN OLD.shop
                                                  ELSE NEW.shop END);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER shop_credentials_shared_app
    AFTER INSERT OR DELETE OR UPDATE OF mode, client_secret ON shop_credentials
    FOR EACH ROW EXECUTE FUNCTION stockpulse_credentials_changed();
