"""Admin API tokens: obtained with the client credentials grant, kept fresh, sealed at rest.

A merchant's own Dev Dashboard app gets its tokens with the client credentials grant
(``POST {admin}/admin/oauth/access_token``, ``grant_type=client_credentials``); they expire
(about 24 h), so a token is renewed a few minutes before it does, and once more when Shopify
answers 401. Renewals of one shop are serialised across processes by a PostgreSQL advisory
lock, and the new token is stored before it is used. A static token (an older admin-created
app) is used as it is. An app installed through this deployment's OAuth (authorization code
grant) renews with its rotating refresh token (connectors.shopify.oauth).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import httpx
from psycopg_pool import AsyncConnectionPool

from connectors.crypto import Keyring
from connectors.db import credentials
from connectors.db.pool import DictConnection
from connectors.shopify.admin import AdminClient
from connectors.shopify.oauth import GrantRefused, admin_base, refresh

RENEW_BEFORE = timedelta(minutes=5)


@dataclass(frozen=True)
class Grant:
    access_token: str
    scope: str | None
    expires_at: datetime | None


async def client_credentials_grant(
    http: httpx.AsyncClient, admin_url: str, shop: str, client_id: str, client_secret: str
) -> Grant:
    response = await http.post(
        f"{admin_base(admin_url, shop)}/admin/oauth/access_token",
        data={
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": client_secret,
        },
    )
    if 400 <= response.status_code < 500:
        raise GrantRefused(f"{shop} refused the app's credentials ({response.status_code})")
    response.raise_for_status()
    body = response.json()
    expires_in = body.get("expires_in")
    return Grant(
        access_token=str(body["access_token"]),
        scope=body.get("scope"),
        expires_at=(datetime.now(UTC) + timedelta(seconds=int(expires_in)) if expires_in else None),
    )


def _lock_id(shop: str) -> int:
    return int.from_bytes(
        hashlib.sha256(f"tokens|{shop}".encode()).digest()[:8], "big", signed=True
    )


class ShopTokens:
    """The token source of one shop, for :class:`connectors.shopify.admin.AdminClient`."""

    def __init__(
        self,
        pool: AsyncConnectionPool[DictConnection],
        keyring: Keyring,
        http: httpx.AsyncClient,
        shop: str,
        default_admin_url: str,
    ) -> None:
        self._pool = pool
        self._keyring = keyring
        self._http = http
        self.shop = shop
        self._default_admin_url = default_admin_url

    async def __call__(self, force_refresh: bool) -> str:
        async with self._pool.connection() as conn:
            creds = await credentials.load(conn, self._keyring, self.shop)
            await conn.commit()
        if creds is None or (creds.access_token is None and creds.mode == "static"):
            raise GrantRefused(f"{self.shop} is not connected")
        if creds.mode == "static" or not self._due(creds, force_refresh):
            assert creds.access_token is not None
            return creds.access_token
        return await self._renew(creds.access_token if force_refresh else None)

    def admin_url(self, creds: credentials.Credentials | None) -> str:
        return (creds.admin_url if creds and creds.admin_url else None) or self._default_admin_url

    @staticmethod
    def _due(creds: credentials.Credentials, force: bool) -> bool:
        if force or creds.access_token is None or creds.access_expires_at is None:
            return True
        return creds.access_expires_at - RENEW_BEFORE <= datetime.now(UTC)

    async def _renew(self, refused_token: str | None) -> str:
        async with self._pool.connection() as conn, conn.transaction():
            # Another process may be renewing this shop's token: wait for it, then look again.
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_lock_id(self.shop),))
            creds = await credentials.load(conn, self._keyring, self.shop)
            assert creds is not None and creds.client_id and creds.client_secret
            fresh = creds.access_token is not None and creds.access_token != refused_token
            if fresh and not self._due(creds, force=False):
                return creds.access_token  # type: ignore[return-value]
            if creds.mode == "authorization_code":
                renewed = await self._refresh(creds)
            else:
                grant = await client_credentials_grant(
                    self._http,
                    self.admin_url(creds),
                    self.shop,
                    creds.client_id,
                    creds.client_secret,
                )
                renewed = replace(
                    creds,
                    access_token=grant.access_token,
                    access_expires_at=grant.expires_at,
                    scopes=grant.scope or creds.scopes,
                )
            # Stored (and committed, leaving this block) before anyone uses the new token.
            await credentials.save(conn, self._keyring, renewed)
        assert renewed.access_token is not None
        return renewed.access_token

    async def _refresh(self, creds: credentials.Credentials) -> credentials.Credentials:
        """Spend the refresh token (it rotates). If the answer is lost, the old one stays
        valid at Shopify until the new access token is used, and the next call spends it
        again; so a failure here only raises."""
        assert creds.client_id and creds.client_secret and creds.refresh_token
        grant = await refresh(
            self._http,
            self.admin_url(creds),
            self.shop,
            creds.client_id,
            creds.client_secret,
            creds.refresh_token,
        )
        return replace(
            creds,
            access_token=grant.access_token,
            access_expires_at=grant.expires_at,
            refresh_token=grant.refresh_token or creds.refresh_token,
            refresh_expires_at=grant.refresh_expires_at or creds.refresh_expires_at,
            scopes=grant.scope or creds.scopes,
        )


async def admin_client(
    pool: AsyncConnectionPool[DictConnection],
    keyring: Keyring,
    http: httpx.AsyncClient,
    shop: str,
    default_admin_url: str,
    api_version: str,
) -> AdminClient:
    """The Admin API client of a connected shop, its tokens kept fresh (LookupError when the
    shop is not connected)."""
    async with pool.connection() as conn:
        creds = await credentials.load(conn, keyring, shop)
        await conn.commit()
    if creds is None:
        raise LookupError(f"{shop} is not connected (stockpulse connect)")
    tokens = ShopTokens(pool, keyring, http, shop, default_admin_url)
    return AdminClient(
        http, AdminClient.endpoint_for(tokens.admin_url(creds), shop, api_version), tokens
    )
