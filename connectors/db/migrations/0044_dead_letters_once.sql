-- One open dead letter per failed message. A worker killed after dead-lettering an event but
-- before its consumer offset was committed applies the batch again, and the event failed and
-- was set aside again: an outside test found a 2,000-line poison order recorded 4,837 times.
-- A message is its stage, shop, Shopify event id, kind and place among the events its webhook
-- became (seq); a redelivery of the same event is the same message. Letters without an event
-- id (a body that could not be read at all) stay apart, as do replayed ones.
DELETE FROM dead_letters d
 USING dead_letters first
 WHERE d.replayed_at IS NULL AND first.replayed_at IS NULL
   AND d.event_id <> ''
   AND (d.stage, d.shop, d.event_id, d.kind, coalesce(d.data->>'seq', ''))
     = (first.stage, first.shop, first.event_id, first.kind, coalesce(first.data->>'seq', ''))
   AND first.id < d.id;
CREATE UNIQUE INDEX dead_letters_once
    ON dead_letters (stage, shop, event_id, kind, (coalesce(data->>'seq', '')))
 WHERE replayed_at IS NULL AND event_id <> '';
