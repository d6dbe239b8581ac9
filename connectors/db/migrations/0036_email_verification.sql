-- Whether an account has shown it receives mail at its address: set by opening a link mailed
-- there (or by a password reset, which is mailed there too). Until then the address is only a
-- claim, so nothing that is given to an address (an invitation, being added as a member) is
-- given to the account. Accounts made before this migration stay unverified: nothing proved
-- their address either. Those the operator makes (`stockpulse users create`, the demo account
-- of `stockpulse up`) are marked at creation by the code that makes them.
ALTER TABLE users ADD COLUMN email_verified_at timestamptz;

-- The links, as the password resets': only the SHA-256 of a random token, single use, expiring.
CREATE TABLE email_verifications (
    token_hash  bytea PRIMARY KEY,
    user_id     bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz
);
CREATE INDEX email_verifications_user ON email_verifications (user_id);
