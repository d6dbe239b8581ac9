"""A shop's locations as Shopify names them."""

from __future__ import annotations

from collections.abc import Sequence

from connectors.db.pool import DictConnection


async def replace(conn: DictConnection, shop: str, found: Sequence[tuple[int, str, bool]]) -> None:
    """Store ``(location id, name, active)`` as read now; a location Shopify no longer lists
    (deleted) stays known by name but inactive, since stock history may still point at it."""
    if found:
        await conn.cursor().executemany(
            "INSERT INTO locations (shop, location_id, name, active) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT (shop, location_id) DO UPDATE SET name = excluded.name,"
            " active = excluded.active, synced_at = now()",
            [(shop, location_id, name, active) for location_id, name, active in found],
        )
    await conn.execute(
        "UPDATE locations SET active = false, synced_at = now()"
        " WHERE shop = %s AND location_id <> ALL(%s)",
        (shop, [location_id for location_id, _, _ in found]),
    )
