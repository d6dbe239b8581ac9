-- Invitations to a shop for an email that has no account yet. Like the other secrets, only
-- the SHA-256 of the link's random token is kept; a row is spent once (accepted_at) or dies
-- at expires_at. Erasing the shop erases its invitations.
CREATE TABLE shop_invitations (
    id           bigserial PRIMARY KEY,
    token_hash   bytea NOT NULL UNIQUE,
    shop         text NOT NULL REFERENCES shops (domain) ON DELETE CASCADE,
    email        text NOT NULL,
    role         text NOT NULL CHECK (role IN ('owner', 'viewer')),
    invited_by   bigint REFERENCES users (id) ON DELETE SET NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    accepted_by  bigint REFERENCES users (id) ON DELETE SET NULL,
    accepted_at  timestamptz
);
CREATE INDEX shop_invitations_shop ON shop_invitations (shop, lower(email));
