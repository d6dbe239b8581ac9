-- The merchant's planning settings: a shop's defaults and per-product overrides. Anything not
-- set falls back (product → shop → the deployment's LEAD_TIME_DAYS etc.). ``version`` grows at
-- every change so the worker knows to replan the shop.
CREATE TABLE shop_settings (
    shop                 text PRIMARY KEY REFERENCES shops (domain) ON DELETE CASCADE,
    lead_time_days       integer CHECK (lead_time_days BETWEEN 1 AND 365),
    service_level        numeric(5, 4) CHECK (service_level >= 0.5 AND service_level < 1),
    target_cover_days    integer CHECK (target_cover_days BETWEEN 1 AND 730),
    low_stock_threshold  integer CHECK (low_stock_threshold >= 0),
    version              bigint NOT NULL DEFAULT 1,
    updated_at           timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE sku_settings (
    shop                 text NOT NULL REFERENCES shops (domain) ON DELETE CASCADE,
    variant_id           bigint NOT NULL,
    lead_time_days       integer CHECK (lead_time_days BETWEEN 1 AND 365),
    service_level        numeric(5, 4) CHECK (service_level >= 0.5 AND service_level < 1),
    target_cover_days    integer CHECK (target_cover_days BETWEEN 1 AND 730),
    low_stock_threshold  integer CHECK (low_stock_threshold >= 0),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (shop, variant_id)
);
