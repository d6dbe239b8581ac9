-- Single-use state nonces of the OAuth install flow (authorization code grant): issued when a
-- merchant starts an install, spent by the callback, worthless after ten minutes.
CREATE TABLE oauth_states (
    state       text PRIMARY KEY,
    shop        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    used_at     timestamptz
);
