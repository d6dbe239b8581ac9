-- A variant Shopify no longer has. Deleting one variant (not its product) sends only a
-- products/update without it, and a webhook body may not list every variant of a big product,
-- so an absence there proves nothing. The hourly reconciliation's export lists every variant
-- of the shop: a variant it does not list, unchanged since the export began, is deleted. An
-- order's placeholder (never described by Shopify) counts from when it was first seen. A later
-- products/update that lists it again, newer than what we hold, brings it back.
CREATE FUNCTION stockpulse_remove_variant(
    p_shop text, p_variant_id bigint, p_unchanged_since timestamptz)
RETURNS SETOF bigint LANGUAGE sql AS $$
    UPDATE variants SET deleted = true
     WHERE shop = p_shop AND variant_id = p_variant_id AND NOT deleted
       AND coalesce(updated_at, first_seen_at) <= p_unchanged_since
    RETURNING variant_id;
$$;
