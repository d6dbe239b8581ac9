"""Who is calling, and what they may see: sessions, API tokens, CSRF and shop roles.

* A browser signs in and gets a server-side session: the cookie (HttpOnly, SameSite=Lax, Secure
  when the deployment is served over HTTPS) holds a random token whose hash is the session's
  key; a login always opens a new session (rotation).
* A script sends ``Authorization: Bearer <token>``, an API token of its user, perhaps read-only.
* Every state-changing request made with a session carries the session's CSRF token (form
  field ``csrf_token`` or header ``X-CSRF-Token``); the forms used before a session exists
  (login, sign-up, password reset) use a double-submit cookie instead. Requests with a bearer
  token need none: a browser never adds that header on its own.
* A shop is visible to its members only; to anyone else it does not exist (404), so its name
  is not confirmed either. Owners may change things; viewers read.

Written here rather than with Litestar's CSRF middleware because the rule depends on how the
caller authenticated (session or token), which the middleware cannot see.
"""

from __future__ import annotations

import hmac
import logging
from datetime import timedelta
from typing import Any
from urllib.parse import quote, urlsplit

from litestar import Request, Response
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, NotFoundException, PermissionDeniedException
from litestar.response import Redirect

from connectors.db import accounts
from connectors.db.accounts import Caller
from connectors.db.shops import SHOP_DOMAIN, get_shop
from web.error_pages import error_body

SESSION_COOKIE = "sp_session"
FORM_CSRF_COOKIE = "sp_form_csrf"
SESSION_LIFETIME = timedelta(days=14)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

log = logging.getLogger(__name__)


class LoginRequired(NotAuthorizedException):
    """No session or token: pages send the browser to the login page, the API answers 401."""


async def caller_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Caller | None:
    """The caller, from a bearer token or else the session cookie (None: anonymous). Looked
    up once per request."""
    if "caller" in connection.scope:
        return connection.scope["caller"]  # type: ignore[typeddict-item]
    found: Caller | None = None
    presented = credential_of(connection)
    if presented is not None:
        via, secret = presented
        async with connection.app.state.pool.connection() as conn:
            if via == "token":
                found = await accounts.token_caller(conn, secret)
            else:
                found = await accounts.session_caller(conn, secret)
            await conn.commit()
    connection.scope["caller"] = found  # type: ignore[typeddict-unknown-key]
    return found


def credential_of(connection: ASGIConnection[Any, Any, Any, Any]) -> tuple[str, str] | None:
    """What the caller signs in with: ("token", a bearer token) or else ("session", the
    session cookie); None without either."""
    scheme, _, token = connection.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return "token", token.strip()
    if cookie := connection.cookies.get(SESSION_COOKIE):
        return "session", cookie
    return None


async def require_caller(request: Request[Any, Any, Any]) -> Caller:
    """The caller, or LoginRequired; for a state-changing request, also its right to make it:
    the session's CSRF token, or a token that is not read-only."""
    caller = await caller_of(request)
    if caller is None:
        raise LoginRequired("sign in, or send an API token")
    if request.method not in SAFE_METHODS:
        if caller.via == "token" and caller.read_only:
            raise PermissionDeniedException("this API token is read-only")
        if caller.via == "session":
            sent = request.headers.get("x-csrf-token") or await _form_field(request, "csrf_token")
            if not sent or not hmac.compare_digest(sent, caller.csrf_token or ""):
                raise PermissionDeniedException("missing or wrong CSRF token; reload the page")
    return caller


async def require_shop(
    request: Request[Any, Any, Any], shop: str, *, owner: bool = False
) -> tuple[Caller, dict[str, Any], str]:
    """The caller, the shop and the caller's role in it, for a caller who may see the shop
    (404 otherwise, as for a shop that does not exist) and, with ``owner``, change it."""
    caller = await require_caller(request)
    return caller, *await _shop_for(request, caller, shop, owner=owner)


async def shop_for_socket(
    connection: ASGIConnection[Any, Any, Any, Any], shop: str
) -> tuple[Caller, str] | None:
    """For a WebSocket handshake: the caller and role when it may read ``shop``; else None."""
    caller = await caller_of(connection)
    if caller is None or not SHOP_DOMAIN.match(shop):
        return None
    async with connection.app.state.pool.connection() as conn:
        role = await accounts.role_of(conn, caller.user_id, shop)
        await conn.commit()
    return (caller, role) if role else None


async def _shop_for(
    connection: ASGIConnection[Any, Any, Any, Any], caller: Caller, shop: str, *, owner: bool
) -> tuple[dict[str, Any], str]:
    if not SHOP_DOMAIN.match(shop):
        raise NotFoundException("unknown shop")
    async with connection.app.state.pool.connection() as conn:
        role = await accounts.role_of(conn, caller.user_id, shop)
        found = await get_shop(conn, shop) if role else None
        await conn.commit()
    if role is None or found is None:
        raise NotFoundException("unknown shop")
    if owner and role != "owner":
        raise PermissionDeniedException("only an owner of this shop may do that")
    return found, role


async def _form_field(request: Request[Any, Any, Any], name: str) -> str | None:
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        return None
    value = (await request.form()).get(name)
    return value if isinstance(value, str) else None


MAX_SHOPIFY_ID = 2**63 - 1


def known_id(value: int) -> int:
    """A Shopify id from a path: beyond bigint it names nothing (404), never a 500."""
    if not 1 <= value <= MAX_SHOPIFY_ID:
        raise NotFoundException("unknown product")
    return value


def same_origin(connection: ASGIConnection[Any, Any, Any, Any], base_url: str) -> bool:
    """Whether a WebSocket handshake comes from our own pages (or from a script, which sends
    no Origin): the Origin must be this host or the deployment's base URL."""
    origin = connection.headers.get("origin")
    if origin is None:
        return True
    host = connection.headers.get("host", "")
    allowed = {_origin(base_url)} | {f"http://{host}", f"https://{host}"}
    return origin.rstrip("/") in allowed


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def secure_cookies(base_url: str) -> bool:
    return urlsplit(base_url).scheme == "https"


def unusable_input(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """Exception handler of what a request's own values made fail below the form checks: a
    value PostgreSQL cannot hold (a NUL in text, a number past its column) or a body nested
    past Python's recursion limit. A 400 saying so, never a 500: the request changed nothing
    (its transaction is rolled back) and the process serves on."""
    log.info("refused %s %s: %s", request.method, request.url.path, type(exc).__name__)
    message = (
        "the request body is nested too deeply"
        if isinstance(exc, RecursionError)
        else "a value in the request cannot be stored (a NUL or control character, or a"
        " number out of range)"
    )
    if request.url.path.startswith("/api/") or "json" in request.headers.get("accept", ""):
        return Response(error_body(400, message), status_code=400)
    return Response(message, status_code=400, media_type="text/plain")


def login_redirect(request: Request[Any, Any, Any], _: Exception) -> Response[Any]:
    """Exception handler of LoginRequired."""
    if request.url.path.startswith("/api/"):
        return Response(
            error_body(401, "sign in, or send an API token"),
            status_code=401,
            headers={"WWW-Authenticate": 'Bearer realm="stockpulse"'},
        )
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return Redirect(f"/login?next={quote(target, safe='/')}", status_code=303)


def safe_next(target: str | None) -> str:
    """Where to go after login: a path of this site only (never ``//host`` or a URL)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target
