"""``/shopify/install`` and ``/shopify/callback``: a store installs this deployment's app.

Every rejection is a clear 4xx and stores nothing; only a callback whose HMAC, shop, state and
timestamp all check out, and whose code Shopify exchanges, connects the store (the same path
as ``stockpulse connect``: time zone, currency, webhook subscriptions, sealed credentials).
Installing again is the same, idempotent.

The state is also kept in a cookie of the browser that began the install, and the callback
must come back to that browser (Shopify's OAuth guidance): a genuine signed callback link
opened by someone else, while signed in here, would otherwise make them the shop's owner.
"""

from __future__ import annotations

import hmac
import logging
from datetime import UTC, datetime, timedelta

import httpx
from litestar import Controller, Request, Response, get
from litestar.datastructures import Cookie, State
from litestar.response import Redirect

from connectors.db import accounts, backfills, credentials, oauth_states
from connectors.db.shops import SHOP_DOMAIN
from connectors.shopify import oauth
from connectors.shopify.admin import AdminError
from connectors.shopify.connect import connect
from web.auth import caller_of, secure_cookies

log = logging.getLogger(__name__)
BACKFILL_DAYS = 730  # 24 months of order history
STATE_COOKIE = "sp_oauth_state"


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
        redirect = Redirect(
            oauth.authorize_url(
                settings.shopify_admin_url,
                shop,
                settings.shopify_api_key,
                settings.shopify_scopes,
                f"{settings.stockpulse_base_url.rstrip('/')}/shopify/callback",
                nonce,
            )
        )
        # Lax: the callback is a top-level GET from Shopify's admin, which Lax cookies follow.
        redirect.cookies.append(
            Cookie(
                key=STATE_COOKIE,
                value=nonce,
                path="/shopify/callback",
                max_age=oauth_states.STATE_TTL_S,
                httponly=True,
                samesite="lax",
                secure=secure_cookies(settings.stockpulse_base_url),
            )
        )
        return redirect

    @get("/callback")
    async def callback(self, request: Request, state: State) -> Response | Redirect:
        checked = _checked(request, state)
        if isinstance(checked, Response):
            return checked
        params, shop = checked
        given = params.get("state", "")
        # Checked before the state is spent: a refusal here leaves the install to finish.
        if not params.get("code"):
            return _refuse(400, "the callback carries no authorization code; install again")
        if not hmac.compare_digest(request.cookies.get(STATE_COOKIE, ""), given):
            return _refuse(
                400, "this install was not started in this browser; start it again from Shopify"
            )
        async with state.pool.connection() as conn, conn.transaction():
            spent = await oauth_states.spend(conn, given, shop)
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
        except (httpx.HTTPError, AdminError) as exc:
            # Shopify away or failing: an outage, not a bug here (no traceback).
            log.warning("connecting %s after its install failed: %r", shop, exc)
            return _refuse(502, "Shopify could not be reached to finish the install; try again")
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
        done = Redirect(f"/shops/{shop}")
        done.delete_cookie(STATE_COOKIE, path="/shopify/callback")
        return done
