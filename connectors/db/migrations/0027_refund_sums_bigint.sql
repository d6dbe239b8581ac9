-- Refunds can arrive before their order, and each refund line's quantity is checked on its
-- own: three refunds of a billion units each passed, and once the order came their sum
-- overflowed the integer it was summed into, so the order and every later event of the line
-- went to dead letters. The sums are bigint now; the net units they give are bounded by the
-- ordered quantity, which fits.
CREATE OR REPLACE FUNCTION stockpulse_recount_line(p_shop text, p_line_item_id bigint, p_cause text)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    line             order_lines%ROWTYPE;
    restocked_units  bigint;
    kept_units       bigint;
    net_units        integer;
    net_rev          numeric(16, 2);
BEGIN
    SELECT * INTO line FROM order_lines
     WHERE shop = p_shop AND line_item_id = p_line_item_id FOR UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;  -- a refund ahead of its order: counted when the order arrives
    END IF;
    SELECT coalesce(sum(r.quantity) FILTER (WHERE r.restocked), 0),
           coalesce(sum(r.quantity) FILTER (WHERE NOT r.restocked), 0)
      INTO restocked_units, kept_units
      FROM refund_lines r
     WHERE r.shop = p_shop AND r.line_item_id = p_line_item_id;
    IF line.cancelled OR line.test OR line.variant_id IS NULL THEN
        net_units := 0;
    ELSE
        net_units := greatest(
            least(line.quantity + kept_units,
                  coalesce(line.ordered_quantity, line.quantity) - restocked_units),
            0);
    END IF;
    net_rev := net_units * line.unit_price;
    IF net_units = line.counted_units AND net_rev = line.counted_revenue THEN
        RETURN NULL;
    END IF;
    UPDATE order_lines SET counted_units = net_units, counted_revenue = net_rev
     WHERE shop = p_shop AND line_item_id = p_line_item_id;
    INSERT INTO daily_demand AS d (shop, variant_id, day, units, revenue)
    VALUES (p_shop, line.variant_id, line.day, net_units - line.counted_units,
            net_rev - line.counted_revenue)
    ON CONFLICT (shop, variant_id, day) DO UPDATE
       SET units = d.units + excluded.units, revenue = d.revenue + excluded.revenue;
    INSERT INTO demand_ledger (shop, variant_id, line_item_id, ts, units_delta, revenue_delta, cause)
    VALUES (p_shop, line.variant_id, p_line_item_id, line.ordered_at,
            net_units - line.counted_units, net_rev - line.counted_revenue, p_cause);
    RETURN line.variant_id;
END $$;
