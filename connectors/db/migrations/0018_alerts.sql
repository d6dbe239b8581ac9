-- Instant alerts. The worker evaluates a SKU's rules whenever its plan changes (alert_states
-- holds each rule's trigger, so an alert fires once per crossing); a fired alert and one
-- delivery per recipient are written in the plan's transaction (the outbox). The sender groups
-- deliveries into emails (alert_emails) and sends each with a Message-ID fixed when the email
-- row was made, so a resend after a crash is recognisably the same message.

CREATE TABLE alert_settings (
    shop                  text PRIMARY KEY REFERENCES shops (domain) ON DELETE CASCADE,
    mode                  text NOT NULL DEFAULT 'immediate' CHECK (mode IN ('immediate', 'digest')),
    digest_hour           smallint NOT NULL DEFAULT 8 CHECK (digest_hour BETWEEN 0 AND 23),
    -- NULL: the shop's own time zone, as Shopify reports it.
    time_zone             text,
    stockout_within_days  integer NOT NULL DEFAULT 7 CHECK (stockout_within_days BETWEEN 1 AND 90),
    cooldown_hours        integer NOT NULL DEFAULT 24 CHECK (cooldown_hours BETWEEN 0 AND 720),
    rules                 text[] NOT NULL DEFAULT ARRAY[
                              'low_stock', 'stockout_soon', 'stockout_before_reorder',
                              'reorder_point', 'overstock', 'dead_stock'],
    updated_at            timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE alert_recipients (
    shop             text NOT NULL REFERENCES shops (domain) ON DELETE CASCADE,
    email            text NOT NULL,
    active           boolean NOT NULL DEFAULT true,
    unsubscribed_at  timestamptz,
    added_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (shop, email)
);

-- When Stockpulse first heard of a variant: a product that never sold is only called dead
-- stock once it has been around for the window the alert names. Existing variants count from
-- this migration, which can only make such an alert later, never wrong.
ALTER TABLE variants ADD COLUMN first_seen_at timestamptz NOT NULL DEFAULT now();

-- A rule's trigger per SKU: armed until it fires, re-armed once the condition has cleared by
-- the rule's margin. No row: armed, never fired.
CREATE TABLE alert_states (
    shop           text NOT NULL REFERENCES shops (domain) ON DELETE CASCADE,
    variant_id     bigint NOT NULL,
    rule           text NOT NULL,
    armed          boolean NOT NULL,
    last_fired_at  timestamptz,
    changed_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (shop, variant_id, rule)
);

CREATE TABLE alerts (
    id            bigserial PRIMARY KEY,
    shop          text NOT NULL REFERENCES shops (domain) ON DELETE CASCADE,
    variant_id    bigint NOT NULL,
    rule          text NOT NULL,
    severity      text NOT NULL,
    fired_at      timestamptz NOT NULL DEFAULT now(),
    -- Overstock and dead stock only ever go out in the daily digest.
    digest_only   boolean NOT NULL,
    -- The numbers the alert was raised on (stock, cover, stockout date, reorder by …), kept
    -- as they were so the email, the page and a resend all tell the same story.
    figures       jsonb NOT NULL,
    -- Set once the broker acknowledged it on stockpulse.alerts; a timer republishes the rest.
    published_at  timestamptz
);
CREATE INDEX alerts_by_shop ON alerts (shop, fired_at DESC, id DESC);
CREATE INDEX alerts_by_variant ON alerts (shop, variant_id, fired_at DESC);
CREATE INDEX alerts_unpublished ON alerts (fired_at) WHERE published_at IS NULL;

-- One email to one recipient: an immediate group, a daily digest, or a test from settings.
CREATE TABLE alert_emails (
    id               bigserial PRIMARY KEY,
    shop             text NOT NULL REFERENCES shops (domain) ON DELETE CASCADE,
    recipient        text NOT NULL,
    kind             text NOT NULL CHECK (kind IN ('immediate', 'digest', 'test')),
    -- The shop-local day a digest is for: one digest per recipient and day.
    digest_day       date,
    message_id       text NOT NULL,
    state            text NOT NULL DEFAULT 'sending'
                         CHECK (state IN ('sending', 'sent', 'failed', 'cancelled')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    last_error       text,
    smtp_reply       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    sent_at          timestamptz
);
CREATE UNIQUE INDEX alert_emails_one_digest ON alert_emails (shop, recipient, digest_day)
    WHERE kind = 'digest';
CREATE INDEX alert_emails_due ON alert_emails (next_attempt_at) WHERE state = 'sending';
CREATE INDEX alert_emails_by_shop ON alert_emails (shop, state);

-- The outbox: one row per alert and recipient, written with the alert. email_id is set when
-- the sender puts it into an email.
CREATE TABLE alert_deliveries (
    alert_id    bigint NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    recipient   text NOT NULL,
    shop        text NOT NULL REFERENCES shops (domain) ON DELETE CASCADE,
    via_digest  boolean NOT NULL,
    -- The moment of the insert, not of the transaction's start: the sender's grouping
    -- window runs from when deliveries appear, which is close to this.
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    email_id    bigint REFERENCES alert_emails (id) ON DELETE CASCADE,
    PRIMARY KEY (alert_id, recipient)
);
CREATE INDEX alert_deliveries_waiting ON alert_deliveries (shop, recipient, created_at)
    WHERE email_id IS NULL;
CREATE INDEX alert_deliveries_by_email ON alert_deliveries (email_id);

-- Wakes the sender as soon as deliveries are committed.
CREATE FUNCTION stockpulse_notify_alert_delivery() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('stockpulse_alert_deliveries', '');
    RETURN NULL;
END $$;
CREATE TRIGGER alert_deliveries_notify AFTER INSERT ON alert_deliveries
    FOR EACH STATEMENT EXECUTE FUNCTION stockpulse_notify_alert_delivery();
