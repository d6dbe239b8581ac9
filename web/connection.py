"""A shop's connection with Shopify: how it is connected, where its history import stands,
when its last webhook came, and its last reconciliation with the corrections it made."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from litestar import Controller, Request, get
from litestar.datastructures import State
from litestar.params import FromPath
from litestar.response import Template

from connectors.db import backfills, inbox, reconciliations
from connectors.zones import zone_or_utc
from web.auth import require_shop

MODES = {
    "client_credentials": "your own app (client credentials; tokens renew themselves)",
    "authorization_code": "this deployment's Shopify app (OAuth, expiring tokens)",
    "static": "an Admin API token of an older custom app",
}


async def connection_state(state: State, shop: str, timezone: str) -> dict[str, Any]:
    async with state.pool.connection() as conn:
        # An uninstalled shop on an app of its own keeps that app's secret until it is erased
        # (its shop/redact is signed with it): it is not connected all the same.
        cur = await conn.execute(
            "SELECT c.mode, c.scopes, c.access_expires_at, c.updated_at FROM shop_credentials c"
            " JOIN shops s ON s.domain = c.shop WHERE c.shop = %s AND s.uninstalled_at IS NULL",
            (shop,),
        )
        credentials = await cur.fetchone()
        backfill = await backfills.state(conn, shop)
        last_webhook = await inbox.last_webhook_at(conn, shop)
        latest = await reconciliations.latest(conn, shop)
        corrections = await reconciliations.corrections(conn, shop, limit=20)
        await conn.commit()
    zone = zone_or_utc(timezone)

    def local(ts: datetime | None) -> str | None:
        """Shown in the shop's time zone; stored and sent in UTC."""
        return None if ts is None else ts.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")

    return {
        "mode": None if credentials is None else credentials["mode"],
        "mode_text": "not connected to Shopify"
        if credentials is None
        else MODES.get(credentials["mode"], credentials["mode"]),
        "scopes": None if credentials is None else credentials["scopes"],
        "last_webhook_at": local(last_webhook),
        "last_webhook_utc": None if last_webhook is None else last_webhook.isoformat(),
        "backfill": None
        if backfill is None
        else {
            "status": backfill["status"],
            "phase": backfill["phase"],
            "since": backfill["since"].isoformat(),
            "orders_applied": backfill["orders_applied"],
            "percent": round(100 * backfill["objects_read"] / backfill["objects_total"])
            if backfill["objects_total"]
            else None,
            "finished_at": local(backfill["finished_at"]),
            "error": backfill["error"],
        },
        "reconciliation": None
        if latest is None
        else {
            "status": latest["status"],
            "started_at": local(latest["started_at"]),
            "finished_at": local(latest["finished_at"]),
            "levels_checked": latest["levels_checked"],
            "orders_checked": latest["orders_checked"],
            "corrections": latest["corrections"],
            "error": latest["error"],
        },
        "recent_corrections": [{**c, "created_at": local(c["created_at"])} for c in corrections],
    }


class ConnectionController(Controller):
    @get("/shops/{shop_domain:str}/connection", include_in_schema=False)
    async def page(
        self, request: Request[Any, Any, Any], state: State, shop_domain: FromPath[str]
    ) -> Template:
        caller, shop, role = await require_shop(request, shop_domain)
        found = await connection_state(state, shop_domain, shop["timezone"])
        return Template(
            "connection.html", context={**found, "shop": shop, "caller": caller, "role": role}
        )

    @get("/api/v1/shops/{shop_domain:str}/connection")
    async def read(
        self, request: Request[Any, Any, Any], state: State, shop_domain: FromPath[str]
    ) -> dict[str, Any]:
        _, shop, _ = await require_shop(request, shop_domain)
        return {"shop": shop_domain, **await connection_state(state, shop_domain, shop["timezone"])}
