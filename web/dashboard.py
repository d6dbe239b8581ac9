"""Dashboard pages, the JSON API and the WebSocket feed of one shop."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import psycopg
from litestar import Controller, Request, WebSocket, get, websocket
from litestar.datastructures import State
from litestar.exceptions import WebSocketDisconnect
from litestar.params import FromPath
from litestar.response import Template

from connectors.db import alerts, backfills, reconciliations
from connectors.db.accounts import digest
from connectors.db.plan import plan_page
from connectors.db.queries import SkuRow, sku_rows
from connectors.kafka.topics import SkuFigures
from connectors.zones import zone_or_utc
from models.inventory import cover
from web.alerts import RULE_CHOICES, banner
from web.auth import credential_of, require_shop, same_origin, shop_for_socket
from web.feed_access import FeedGrant

# Rows with fewer days of cover than this are marked on the page (the script reads it from the
# page, so there is one number).
LOW_COVER_DAYS = 7


def figures(rows: list[SkuRow]) -> list[SkuFigures]:
    return [
        row.figures(
            *cover(row.stock, row.sold_28d, row.plan_days_of_cover, row.plan_as_of is not None)
        )
        for row in rows
    ]


# The dashboard's table is the morning's short list; the reorder plan pages through them all.
DASHBOARD_ROWS = 100
# Banners: the day's latest alerts (dashboard.js keeps as many when live ones arrive).
BANNER_HOURS = 24
BANNERS = 5


async def table_rows(conn: Any, shop: str) -> tuple[list[SkuFigures], int]:
    """The table's rows and how many SKUs the shop has: all of a small shop, in catalogue
    order; of a large one, the ``DASHBOARD_ROWS`` that run out soonest, picked in SQL
    (reading and rendering thousands of rows is what made the page slow)."""
    soonest = await plan_page(conn, shop, sort="days_of_cover", limit=DASHBOARD_ROWS)
    if soonest.total <= DASHBOARD_ROWS:
        return figures(await sku_rows(conn, shop)), soonest.total
    return figures([planned.row for planned in soonest.rows]), soonest.total


class DashboardController(Controller):
    include_in_schema = False  # pages and fragments, not the JSON API

    @get("/shops/{shop_domain:str}")
    async def shop_page(
        self, request: Request[Any, Any, Any], state: State, shop_domain: FromPath[str]
    ) -> Template:
        caller, shop, role = await require_shop(request, shop_domain)
        async with state.pool.connection() as conn:
            rows, total = await table_rows(conn, shop_domain)
            backfill = await backfills.state(conn, shop_domain)
            recent = await alerts.recent(conn, shop_domain, hours=BANNER_HOURS, limit=BANNERS)
        zone = zone_or_utc(shop.get("timezone"))
        return Template(
            "dashboard.html",
            context={
                "shop": shop,
                "shop_domain": shop_domain,
                "rows": rows,
                "total_skus": total,
                "low_cover_days": LOW_COVER_DAYS,
                "backfill": backfill,
                "banners": [banner(row, shop_domain, zone) for row in recent],
                "max_banners": BANNERS,
                "rule_titles": dict(RULE_CHOICES),
                "caller": caller,
                "role": role,
            },
        )

    @get("/shops/{shop_domain:str}/sync")
    async def shop_sync(
        self, request: Request[Any, Any, Any], state: State, shop_domain: FromPath[str]
    ) -> Template:
        """The history import's banner, which polls this while the import runs."""
        await require_shop(request, shop_domain)
        async with state.pool.connection() as conn:
            backfill = await backfills.state(conn, shop_domain)
        return Template("_sync.html", context={"shop_domain": shop_domain, "backfill": backfill})

    @get("/shops/{shop_domain:str}/rows")
    async def shop_rows(
        self, request: Request[Any, Any, Any], state: State, shop_domain: FromPath[str]
    ) -> Template:
        """The table body alone, for htmx to refresh after a reconnect or a new SKU."""
        await require_shop(request, shop_domain)
        async with state.pool.connection() as conn:
            rows, _ = await table_rows(conn, shop_domain)
        return Template(
            "_rows.html",
            context={"rows": rows, "low_cover_days": LOW_COVER_DAYS, "shop_domain": shop_domain},
        )


class ApiController(Controller):
    path = "/api/v1"

    @get("/shops/{shop_domain:str}/skus")
    async def skus(
        self, request: Request[Any, Any, Any], state: State, shop_domain: FromPath[str]
    ) -> dict:
        await require_shop(request, shop_domain)
        async with state.pool.connection() as conn:
            rows = figures(await sku_rows(conn, shop_domain))
        return {"shop": shop_domain, "skus": [r.model_dump() for r in rows]}

    @get("/shops/{shop_domain:str}/sync")
    async def sync(
        self, request: Request[Any, Any, Any], state: State, shop_domain: FromPath[str]
    ) -> dict:
        """Where the shop's history import stands, its last reconciliation with Shopify and
        the corrections reconciliation made lately."""
        await require_shop(request, shop_domain)
        async with state.pool.connection() as conn:
            backfill = await backfills.state(conn, shop_domain)
            latest = await reconciliations.latest(conn, shop_domain)
            corrections = await reconciliations.corrections(conn, shop_domain, limit=50)
        return {
            "shop": shop_domain,
            "backfill": _public(backfill, _BACKFILL_FIELDS),
            "reconciliation": _public(latest, _RECONCILIATION_FIELDS),
            "corrections": corrections,
        }


_BACKFILL_FIELDS = (
    "status",
    "since",
    "phase",
    "objects_read",
    "objects_total",
    "orders_applied",
    "lines_applied",
    "error",
    "started_at",
    "finished_at",
)
_RECONCILIATION_FIELDS = (
    "status",
    "orders_since",
    "started_at",
    "finished_at",
    "levels_checked",
    "orders_checked",
    "corrections",
    "error",
)


def _public(row: dict | None, fields: tuple[str, ...]) -> dict | None:
    return None if row is None else {name: row[name] for name in fields}


@websocket("/ws/shops/{shop_domain:str}")
async def shop_feed(socket: WebSocket, shop_domain: FromPath[str]) -> None:
    """JSON messages with a ``type`` (``stock``, ``demand``, …) for one shop, as they happen."""
    state = socket.app.state
    # Refused before anything is sent: a page of another site must not read a signed-in
    # browser's feed, and a caller sees only the shops it is a member of.
    if not same_origin(socket, state.settings.stockpulse_base_url):
        await socket.close(code=4403, reason="cross-site request")
        return
    try:
        # Pages and the API have their deadline (web/deadline.py); a handshake has this one,
        # or it waited as long as a paused database did.
        async with asyncio.timeout(state.settings.request_timeout_seconds):
            allowed = await shop_for_socket(socket, shop_domain)
    except (TimeoutError, psycopg.OperationalError):
        # Accepted to be closed with a reason: a refused handshake reads as 403.
        await socket.accept()
        await socket.close(code=1013, reason="the database is not answering; try again")
        return
    if allowed is None:
        signed_in = socket.scope.get("caller") is not None
        await socket.close(
            code=4404 if signed_in else 4401, reason="unknown shop" if signed_in else "sign in"
        )
        return
    caller, _ = allowed
    via, secret = credential_of(socket) or ("", "")
    # Counted before the accept, with no await between the count and the watch, so parallel
    # handshakes cannot pass the limit together.
    grant = state.feed_access.watch(
        FeedGrant(via, digest(secret), caller.user_id, shop_domain),
        most_per_user=state.settings.websocket_feeds_per_account,
    )
    try:
        await socket.accept()
    except BaseException:
        if grant is not None:
            state.feed_access.forget(grant)
        raise
    if grant is None:
        # One login held 20,000 feeds open and the process ran out of files for everyone.
        await socket.close(code=4429, reason="too many open feeds for this account")
        return
    subscriber = state.hub.subscribe(shop_domain)
    # Clients send nothing we need; reading still tells us at once when they go away.
    closed = asyncio.create_task(_wait_closed(socket))
    revoked = asyncio.create_task(grant.ended.wait())
    try:
        await socket.send_text(json.dumps({"type": "hello", "shop": shop_domain}))
        while not closed.done():
            drained = asyncio.create_task(subscriber.drain())
            await asyncio.wait({drained, closed, revoked}, return_when=asyncio.FIRST_COMPLETED)
            if not drained.done():
                drained.cancel()
                if revoked.done() and not closed.done():
                    await socket.close(code=4401, reason="signed out, or access to the shop ended")
                break
            for message in drained.result():
                await socket.send_text(message)
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass
    finally:
        closed.cancel()
        revoked.cancel()
        state.feed_access.forget(grant)
        state.hub.unsubscribe(subscriber)


async def _wait_closed(socket: WebSocket) -> None:
    try:
        while True:
            await socket.receive_data(mode="text")
    except (WebSocketDisconnect, RuntimeError, OSError):
        return
