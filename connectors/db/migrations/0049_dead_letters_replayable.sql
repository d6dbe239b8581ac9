-- A letter whose body could not be read as JSON with one meaning (a key given twice, a lone
-- surrogate escape) keeps a reading of it, not what Shopify sent: replaying that reading
-- applied a value Shopify never unambiguously said (an outside test). Such letters say so.
ALTER TABLE dead_letters ADD COLUMN replayable boolean NOT NULL DEFAULT true;
