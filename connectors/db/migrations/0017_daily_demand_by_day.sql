-- The dashboard, the reorder plan and the charts read a shop's last 28 days of demand; the
-- primary key (shop, variant_id, day) cannot bound that by day, so they read the shop's
-- whole history. This index serves those reads from the index alone.
CREATE INDEX daily_demand_shop_day ON daily_demand (shop, day) INCLUDE (variant_id, units);
