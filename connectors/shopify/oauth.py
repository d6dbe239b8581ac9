"""Shopify OAuth (authorization code grant) for stores installing this deployment's app.

Install: Shopify (or the merchant) opens ``/shopify/install?shop&timestamp&hmac``; the query is
signed with the app secret (hex HMAC-SHA256 of the other parameters, sorted). We redirect to
the store's ``/admin/oauth/authorize`` with a fresh single-use ``state``. The callback carries
``code``, ``shop``, ``state``, ``timestamp`` and ``hmac``; the code is exchanged for an
*expiring* offline token (about an hour) and a refresh token that rotates on each use
(``expiring=1``; public apps must use these from 2027-01-01). Shopify keeps the previous
refresh token valid until the new access token is used, so a lost refresh response is
recovered by refreshing again with the old one.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import httpx

MAX_CLOCK_SKEW_S = 300  # an install link older (or newer) than this is refused


class GrantRefused(Exception):
    """Shopify refused a token request (wrong client id or secret, a spent code or refresh
    token, an app not installed)."""


def admin_base(admin_url: str, shop: str) -> str:
    """``SHOPIFY_ADMIN_URL`` (or a shop's own override) for ``shop``: its Admin base URL."""
    return admin_url.format(shop=shop).rstrip("/")


def query_signature(params: Mapping[str, str], secret: bytes) -> str:
    """Shopify's hex HMAC of a query: every parameter but ``hmac``, sorted, ``k=v`` joined
    with ``&``.

    >>> query_signature({"shop": "s.myshopify.com", "timestamp": "1"}, b"secret")[:16]
    '75bde934d81d52d5'
    """
    message = "&".join(
        f"{k}={v}" for k, v in sorted(params.items()) if k not in ("hmac", "signature")
    )
    return hmac.new(secret, message.encode(), hashlib.sha256).hexdigest()


def verify_query(params: Mapping[str, str], secrets: Iterable[bytes]) -> bool:
    given = params.get("hmac", "")
    ok = False
    for secret in secrets:
        ok |= hmac.compare_digest(query_signature(params, secret), given)
    return ok


def fresh(timestamp: str | None, now: float | None = None) -> bool:
    try:
        at = int(timestamp or "")
    except ValueError:
        return False
    return abs((now or time.time()) - at) <= MAX_CLOCK_SKEW_S


def authorize_url(
    admin_url: str, shop: str, client_id: str, scopes: str, redirect_uri: str, state: str
) -> str:
    query = urlencode(
        {"client_id": client_id, "scope": scopes, "redirect_uri": redirect_uri, "state": state}
    )
    return f"{admin_base(admin_url, shop)}/admin/oauth/authorize?{query}"


class OAuthGrant:
    def __init__(self, body: Mapping[str, object]) -> None:
        now = datetime.now(UTC)
        self.access_token = str(body["access_token"])
        self.scope = str(body.get("scope") or "") or None
        self.refresh_token = str(body["refresh_token"]) if body.get("refresh_token") else None
        self.expires_at = _after(now, body.get("expires_in"))
        self.refresh_expires_at = _after(now, body.get("refresh_token_expires_in"))


def _after(now: datetime, seconds: object) -> datetime | None:
    return now + timedelta(seconds=int(str(seconds))) if seconds else None


async def _token_request(
    http: httpx.AsyncClient, admin_url: str, shop: str, form: dict[str, str]
) -> OAuthGrant:
    response = await http.post(f"{admin_base(admin_url, shop)}/admin/oauth/access_token", data=form)
    if 400 <= response.status_code < 500:
        raise GrantRefused(f"{shop} refused the token request ({response.status_code})")
    response.raise_for_status()
    return OAuthGrant(response.json())


async def exchange_code(
    http: httpx.AsyncClient,
    admin_url: str,
    shop: str,
    client_id: str,
    client_secret: str,
    code: str,
) -> OAuthGrant:
    return await _token_request(
        http,
        admin_url,
        shop,
        {"client_id": client_id, "client_secret": client_secret, "code": code, "expiring": "1"},
    )


async def refresh(
    http: httpx.AsyncClient,
    admin_url: str,
    shop: str,
    client_id: str,
    client_secret: str,
    refresh_token: str,
) -> OAuthGrant:
    return await _token_request(
        http,
        admin_url,
        shop,
        {
            "client_id": client_id,
            "client_secret": client_secret,
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
        },
    )
