"""Connecting one's own store from the web app: the shop's domain with its Dev Dashboard
app's client id and secret (the client credentials grant), as ``stockpulse connect`` does.
The account that connects it owns it; a shop other accounts already own is refused, so
knowing a shop's domain never takes it over."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import httpx
from litestar import Controller, Request, Response, get, post
from litestar.datastructures import State
from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.response import Redirect, Template

from connectors.db import accounts, backfills, credentials
from connectors.db.shops import SHOP_DOMAIN
from connectors.shopify.admin import AdminError
from connectors.shopify.connect import connect
from connectors.shopify.oauth import GrantRefused
from web.auth import require_caller

log = logging.getLogger(__name__)
FormBody = Body(media_type=RequestEncodingType.URL_ENCODED)
HISTORY_DAYS = 730  # 24 months, as an install's backfill


class ConnectFormController(Controller):
    include_in_schema = False

    @get("/connect")
    async def page(self, request: Request[Any, Any, Any]) -> Template:
        caller = await require_caller(request)
        return Template("connect.html", context={"caller": caller, "error": None, "shop": None})

    @post("/connect")
    async def submit(
        self,
        request: Request[Any, Any, Any],
        state: State,
        data: Annotated[dict[str, str], FormBody],
    ) -> Response[Any]:
        caller = await require_caller(request)
        shop = (data.get("shop") or "").strip().lower()
        client_id = (data.get("client_id") or "").strip()
        client_secret = (data.get("client_secret") or "").strip()

        def refused(message: str, status: int = 400) -> Template:
            return Template(
                "connect.html",
                context={"caller": caller, "error": message, "shop": None, "typed": shop},
                status_code=status,
            )

        if not SHOP_DOMAIN.match(shop):
            return refused("Enter your store's your-store.myshopify.com address.")
        if not client_id or not client_secret or max(len(client_id), len(client_secret)) > 200:
            return refused("Enter your app's client id and client secret from the Dev Dashboard.")
        async with state.pool.connection() as conn:
            owners = {
                m["email"].lower()
                for m in await accounts.members(conn, shop)
                if m["role"] == "owner"
            }
            await conn.commit()
        if owners and caller.email.lower() not in owners:
            return refused(
                "Another account already runs this store in Stockpulse; ask its owner to add you.",
                status=403,
            )
        try:
            done = await connect(
                state.pool,
                state.keyring,
                state.http,
                state.settings,
                credentials.Credentials(
                    shop=shop,
                    mode="client_credentials",
                    client_id=client_id,
                    client_secret=client_secret,
                ),
            )
        except (GrantRefused, AdminError) as exc:
            log.info("connecting %s from the web app was refused: %s", shop, exc)
            return refused("Shopify refused these credentials: check the client id and secret.")
        except httpx.HTTPError as exc:
            log.warning("connecting %s: Shopify unreachable: %s", shop, exc)
            return refused("Shopify could not be reached; try again in a minute.", status=502)
        since = (datetime.now(UTC) - timedelta(days=HISTORY_DAYS)).date()
        async with state.pool.connection() as conn, conn.transaction():
            await accounts.add_member(conn, done.shop, caller.user_id, "owner")
            await backfills.request(conn, done.shop, since)
        return Redirect(f"/shops/{done.shop}", status_code=303)
