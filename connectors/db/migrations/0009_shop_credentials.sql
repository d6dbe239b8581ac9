-- How Stockpulse reaches each shop, and which secret its webhooks verify with. Secrets are
-- sealed with AES-256-GCM (connectors/crypto.py) before they reach this table.
CREATE TABLE shop_credentials (
    shop                text PRIMARY KEY REFERENCES shops (domain) ON DELETE CASCADE,
    -- client_credentials: the merchant's own Dev Dashboard app; authorization_code: this
    -- deployment's app (OAuth); static: an older admin-created app's shpat_ token.
    mode                text NOT NULL
                        CHECK (mode IN ('client_credentials', 'authorization_code', 'static')),
    client_id           text,
    client_secret       bytea,        -- sealed; also the HMAC key of the shop's webhooks
    access_token        bytea,        -- sealed
    access_expires_at   timestamptz,
    refresh_token       bytea,        -- sealed
    refresh_expires_at  timestamptz,
    scopes              text,
    admin_url           text,         -- overrides SHOPIFY_ADMIN_URL for this shop (a fake one)
    updated_at          timestamptz NOT NULL DEFAULT now()
);
