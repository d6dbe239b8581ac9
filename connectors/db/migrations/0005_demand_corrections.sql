-- Corrections to days a SKU's online model may already have learned: a refund or a late order
-- webhook landing on a closed shop-local day. The forecast keeper takes these rows and rebuilds
-- the SKU's model from daily_demand, since an online model cannot unlearn a day.
CREATE TABLE demand_corrections (
    shop          text NOT NULL REFERENCES shops (domain) ON DELETE CASCADE,
    variant_id    bigint NOT NULL,
    earliest_day  date NOT NULL,
    PRIMARY KEY (shop, variant_id)
);

-- A trigger rather than a line in each write function: whatever changes a closed day's units
-- (the write path today, a backfill tomorrow) leaves the note.
CREATE FUNCTION stockpulse_note_demand_correction() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.units = OLD.units THEN
        RETURN NULL;
    END IF;
    IF NEW.day < (SELECT (now() AT TIME ZONE s.timezone)::date FROM shops s
                   WHERE s.domain = NEW.shop) THEN
        INSERT INTO demand_corrections AS c (shop, variant_id, earliest_day)
        VALUES (NEW.shop, NEW.variant_id, NEW.day)
        ON CONFLICT (shop, variant_id) DO UPDATE
           SET earliest_day = least(c.earliest_day, excluded.earliest_day);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER daily_demand_corrections AFTER INSERT OR UPDATE OF units ON daily_demand
    FOR EACH ROW EXECUTE FUNCTION stockpulse_note_demand_correction();
