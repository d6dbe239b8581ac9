-- A products/delete is final: Shopify never reuses a product id and cannot restore a deleted
-- product. So it is kept as a tombstone, and any write that would bring the product's
-- variants back is a stale or early delivery: a products/create that Shopify delivered after
-- the delete, a products/update sent before the delete but delivered after it, an order line
-- of the product arriving late. Before this, the delete only flagged the variants it found,
-- and each of those brought them back.
CREATE TABLE deleted_products (
    shop        text NOT NULL REFERENCES shops (domain) ON DELETE CASCADE,
    product_id  bigint NOT NULL,
    deleted_at  timestamptz NOT NULL DEFAULT now(),  -- when the delete was applied
    PRIMARY KEY (shop, product_id)
);

-- A trigger rather than a check in each write function: variants are written by webhooks,
-- order lines, the backfill and the hourly reconciliation, and none may revive them.
CREATE FUNCTION stockpulse_keep_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.product_id IS NOT NULL AND NOT NEW.deleted AND EXISTS (
        SELECT 1 FROM deleted_products d
         WHERE d.shop = NEW.shop AND d.product_id = NEW.product_id) THEN
        NEW.deleted := true;
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER variants_keep_deleted BEFORE INSERT OR UPDATE ON variants
    FOR EACH ROW EXECUTE FUNCTION stockpulse_keep_deleted();
