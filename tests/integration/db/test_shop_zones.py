"""A shop's time zone as Shopify reports it, against what this machine's tz databases know."""

from __future__ import annotations

import uuid

from connectors.db import shops
from connectors.db.pool import DictConnection


async def _zone(conn: DictConnection, shop: str) -> str:
    cur = await conn.execute("SELECT timezone FROM shops WHERE domain = %s", (shop,))
    row = await cur.fetchone()
    assert row is not None
    return str(row["timezone"])


async def test_a_zone_not_known_here_never_overwrites_the_shops_own(conn: DictConnection) -> None:
    """Reported as UTC, an unknown zone replaced a shop's good one at the next reconcile or
    reinstall, and moved every order written meanwhile to UTC days (found in review)."""
    shop = f"t{uuid.uuid4().hex[:12]}.myshopify.com"
    settings = {"name": "Zones", "currency": "EUR"}
    # New, in a zone PostgreSQL does not know (Python's tz database may be newer): UTC.
    await shops.install(conn, shop, timezone="America/Not_Yet_A_Zone", **settings)
    assert await _zone(conn, shop) == "UTC"
    await shops.install(conn, shop, timezone="Asia/Tokyo", **settings)
    assert await _zone(conn, shop) == "Asia/Tokyo"
    for unknown in (None, "America/Not_Yet_A_Zone"):
        await shops.sync_settings(conn, shop, timezone=unknown, **settings)
        assert await _zone(conn, shop) == "Asia/Tokyo", unknown
        await shops.install(conn, shop, timezone=unknown, **settings)
        assert await _zone(conn, shop) == "Asia/Tokyo", unknown
    await shops.sync_settings(conn, shop, timezone="Europe/Berlin", **settings)
    assert await _zone(conn, shop) == "Europe/Berlin"
