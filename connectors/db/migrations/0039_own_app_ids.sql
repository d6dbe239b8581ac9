-- Migration 0006 made Shopify's ids unique across shops: Shopify signs a webhook's body, not
-- its shop header, so a body captured from one shop and replayed under another's domain fails
-- instead of writing into that shop. But a shop connected through an app of its own signs
-- with a secret its merchant holds: that merchant could sign bodies with ids another shop will
-- use (variant ids are public on any storefront) and so keep that shop's products, stock and
-- orders out for good (an outside test). Only shops on this deployment's app share a secret,
-- so only among them can a replay cross shops: their ids stay unique across them. An own-app
-- shop's ids are unique within the shop (the primary keys) and block no other shop.
CREATE FUNCTION stockpulse_on_shared_app(p_shop text) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT NOT EXISTS (
        SELECT 1 FROM shop_credentials
         WHERE shop = p_shop AND mode IN ('client_credentials', 'static')
           AND client_secret IS NOT NULL)
$$;

CREATE FUNCTION stockpulse_mark_shared_app() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.shared_app := stockpulse_on_shared_app(NEW.shop);
    RETURN NEW;
END $$;

ALTER TABLE variants ADD COLUMN shared_app boolean NOT NULL DEFAULT true;
ALTER TABLE inventory_levels ADD COLUMN shared_app boolean NOT NULL DEFAULT true;
ALTER TABLE order_lines ADD COLUMN shared_app boolean NOT NULL DEFAULT true;
ALTER TABLE refund_lines ADD COLUMN shared_app boolean NOT NULL DEFAULT true;

UPDATE variants SET shared_app = false WHERE NOT stockpulse_on_shared_app(shop);
UPDATE inventory_levels SET shared_app = false WHERE NOT stockpulse_on_shared_app(shop);
UPDATE order_lines SET shared_app = false WHERE NOT stockpulse_on_shared_app(shop);
UPDATE refund_lines SET shared_app = false WHERE NOT stockpulse_on_shared_app(shop);

CREATE TRIGGER variants_shared_app BEFORE INSERT ON variants
    FOR EACH ROW EXECUTE FUNCTION stockpulse_mark_shared_app();
CREATE TRIGGER inventory_levels_shared_app BEFORE INSERT ON inventory_levels
    FOR EACH ROW EXECUTE FUNCTION stockpulse_mark_shared_app();
CREATE TRIGGER order_lines_shared_app BEFORE INSERT ON order_lines
    FOR EACH ROW EXECUTE FUNCTION stockpulse_mark_shared_app();
CREATE TRIGGER refund_lines_shared_app BEFORE INSERT ON refund_lines
    FOR EACH ROW EXECUTE FUNCTION stockpulse_mark_shared_app();

DROP INDEX order_lines_global_line;
DROP INDEX variants_global_variant;
DROP INDEX inventory_levels_global_level;
DROP INDEX refund_lines_global_line;
CREATE UNIQUE INDEX order_lines_global_line ON order_lines (line_item_id) WHERE shared_app;
CREATE UNIQUE INDEX variants_global_variant ON variants (variant_id) WHERE shared_app;
CREATE UNIQUE INDEX inventory_levels_global_level ON inventory_levels (inventory_item_id, location_id)
    WHERE shared_app;
CREATE UNIQUE INDEX refund_lines_global_line ON refund_lines (refund_id, line_item_id)
    WHERE shared_app;
