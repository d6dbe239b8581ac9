-- Migration 0041 moved a shop's rows onto or off the shared list when the shop changed apps.
-- Onto it was wrong (an outside test): a merchant could claim ids on an app of its own, then
-- install this deployment's app, and its rows, now shared, kept later shops' genuine ids out
-- again. A row's mark says which secret signed the body that wrote it, and that does not
-- change: a body signed by a shop's own secret cannot be replayed under a shop of the shared
-- one, so its rows never need the shared list; a body signed by the shared secret can be,
-- so its rows stay on it whichever app the shop uses later. Rows 0041 moved are left as
-- they are: it never reached a release.
DROP TRIGGER shop_credentials_shared_app ON shop_credentials;
DROP FUNCTION stockpulse_credentials_changed();
DROP FUNCTION stockpulse_follow_shared_app(text);
