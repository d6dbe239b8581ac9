-- An install's state nonce is kept as its SHA-256, as sessions and API tokens are: whoever
-- reads the table (a backup, a replica) cannot finish an install begun by someone else.
-- Those issued before this migration are digested in place, so an install under way goes on.
ALTER TABLE oauth_states RENAME COLUMN state TO state_digest;
ALTER TABLE oauth_states
    ALTER COLUMN state_digest TYPE bytea USING sha256(convert_to(state_digest, 'UTF8'));
