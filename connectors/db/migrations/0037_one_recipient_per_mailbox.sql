-- Bob@example.com and bob@example.com were stored as two recipients: every alert went twice,
-- and unsubscribing one left the other. One row per mailbox now, case aside; of duplicates the
-- one unsubscribed is kept (its owner said no), else the first added.
DELETE FROM alert_recipients a
 USING alert_recipients b
 WHERE a.shop = b.shop
   AND lower(a.email) = lower(b.email)
   AND a.email <> b.email
   AND (a.active, a.added_at, a.email) > (b.active, b.added_at, b.email);

CREATE UNIQUE INDEX alert_recipients_one_mailbox ON alert_recipients (shop, lower(email));
