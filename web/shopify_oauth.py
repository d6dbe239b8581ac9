"""``/shopify/install`` and ``/shopify/callback``: a store installs this deployment's app.

Every rejection is a clear 4xx and stores nothing; only a callback whose HMAC, shop, state and
timestamp all check out, and whose code Shopify exchanges, connects the store (the same path
as ``stockpulse connect``: time zone, currency, webhook subscriptions, sealed credentials).
Installing again is the same, idempotent.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from litestar import Controller, Request, Response, get
from litestar.datastructures import State
from litestar.response import Redirect

from connectors.db import accounts, backfills, credentials, oauth_states
from connectors.db.shops import SHOP_DOMAIN
from connectors.shopify import oauth
from connectors.shopify.connect import connect
from web.auth import caller_of

log = logging.getLogger(__name__)
BACKFILL_DAYS = 730  # 24 months of order history


def _refuse(status: int, message: str) -> Response:
    return Response({"status_code": status, "detail": message}, status_code=status)


def _checked(request: Request, state: State) -> tuple[dict[str, str], str] | Response:
    """The query and its shop when the shop is well-formed and the signature and time hold."""
    params = {k: v for k, v in request.query_params.items()}
    shop = params.get("shop", "").lower()
    if not SHOP_DOMAIN.match(shop):
        return _refuse(400, "shop must be a STORE.myshopify.com domain")
    if not oauth.verify_query(params, state.settings.webhook_secrets):
        return _refuse(401, "invalid HMAC signature")
    if not oauth.fresh(params.get("timestamp")):
        return _refuse(400, "the link has expired; start the install again from Shopify")
    if not state.settings.shopify_api_key:
        return _refuse(400, "this deployment has no Shopify app (SHOPIFY_API_KEY) configured")
    return params, shop


class ShopifyOAuthController(Controller):
    path = "/shopify"

    @get("/install")
    async def install(self, request: Request, state: State) -> Response | Redirect:
        checked = _checked(request, state)
        if isinstance(checked, Response):
            return checked
        _, shop = checked
        settings = state.settings
        async with state.pool.connection() as conn, conn.transaction():
            nonce = await oauth_states.issue(conn, shop)
        return Redirect(
            oauth.authorize_url(
                settings.shopify_admin_url,
                shop,
                settings.shopify_api_key,
                settings.shopify_scopes,
                f"{settings.stockpulse_base_url.rstrip('/')}/shopify/callback",
                nonce,
            )
        )

    @get("/callback")
    async def callback(self, request: Request, state: State) -> Response | Redirect:
        checked = _checked(request, state)
        if isinstance(checked, Response):
            return checked
        params, shop = checked
        async with state.pool.connection() as conn, conn.transaction():
            spent = await oauth_states.spend(conn, params.get("state", ""), shop)
        if not spent:
            return _refuse(400, "unknown, expired or already used state; install again")
        settings = state.settings
        secret = settings.webhook_secrets[0].decode()
        try:
            grant = await oauth.exchange_code(
                state.http,
                settings.shopify_admin_url,
                shop,
                settings.shopify_api_key,
                secret,
                params.get("code", ""),
            )
            await connect(
                state.pool,
                state.keyring,
                state.http,
                settings,
                credentials.Credentials(
                    shop=shop,
                    mode="authorization_code",
                    client_id=settings.shopify_api_key,
                    client_secret=secret,
                    access_token=grant.access_token,
                    access_expires_at=grant.expires_at,
                    refresh_token=grant.refresh_token,
                    refresh_expires_at=grant.refresh_expires_at,
                    scopes=grant.scope,
                ),
            )
        except oauth.GrantRefused as exc:
            return _refuse(400, str(exc))
        except Exception:
            log.exception("connecting %s after its install failed", shop)
            return _refuse(502, "Shopify could not be reached to finish the install; try again")
        # The worker reads the history (and refits the forecasts) in the background.
        since = (datetime.now(UTC) - timedelta(days=BACKFILL_DAYS)).date()
        caller = await caller_of(request)
        async with state.pool.connection() as conn, conn.transaction():
            await backfills.request(conn, shop, since)
            # Shopify's approval just proved the signed-in person runs this store: the shop
            # is theirs. Installed without a session, it waits for `stockpulse shops assign`.
            if caller is not None and caller.via == "session":
                await accounts.add_member(conn, shop, caller.user_id, "owner")
        return Redirect(f"/shops/{shop}")
