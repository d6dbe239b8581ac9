-- A shop's time zone is read in queries over every shop at once (the nightly schedule, the
-- forecast refresh): one name PostgreSQL does not know ("Mars/Base", from `shops add`) failed
-- them for every shop, every 30 seconds. A name it cannot use is now refused where it is
-- written; one already stored becomes UTC.
CREATE FUNCTION stockpulse_check_timezone() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM now() AT TIME ZONE NEW.timezone;
    RETURN NEW;
EXCEPTION WHEN invalid_parameter_value THEN
    RAISE EXCEPTION 'unknown time zone: %', NEW.timezone USING ERRCODE = 'invalid_parameter_value';
END $$;

DO $$
DECLARE shop record;
BEGIN
    FOR shop IN SELECT domain, timezone FROM shops LOOP
        BEGIN
            PERFORM now() AT TIME ZONE shop.timezone;
        EXCEPTION WHEN invalid_parameter_value THEN
            UPDATE shops SET timezone = 'UTC' WHERE domain = shop.domain;
            RAISE NOTICE 'shop %: time zone % is unknown to PostgreSQL, now UTC',
                shop.domain, shop.timezone;
        END;
    END LOOP;
END $$;

CREATE TRIGGER shops_timezone_checked BEFORE INSERT OR UPDATE OF timezone ON shops
    FOR EACH ROW EXECUTE FUNCTION stockpulse_check_timezone();
