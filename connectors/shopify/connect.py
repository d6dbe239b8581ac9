"""Connect a store: prove the credentials against the Admin API, learn the shop's time zone
and currency from Shopify (history is bucketed into its days), subscribe its webhooks to
``STOCKPULSE_BASE_URL/webhooks/shopify`` (reconciled: connecting again changes nothing), and
store it all sealed."""

from __future__ import annotations

from dataclasses import dataclass, replace

import httpx
from psycopg_pool import AsyncConnectionPool

from connectors.crypto import Keyring
from connectors.db import credentials, shops
from connectors.db.pool import DictConnection
from connectors.settings import Settings
from connectors.shopify import subscriptions
from connectors.shopify.admin import AdminClient
from connectors.shopify.shop_details import shop_details
from connectors.shopify.tokens import client_credentials_grant

WEBHOOK_PATH = "/webhooks/shopify"


@dataclass(frozen=True)
class Connected:
    shop: str
    name: str
    timezone: str | None  # None: Shopify's is not known here, the shop kept its own
    currency: str


async def connect(
    pool: AsyncConnectionPool[DictConnection],
    keyring: Keyring,
    http: httpx.AsyncClient,
    settings: Settings,
    creds: credentials.Credentials,
) -> Connected:
    """``creds`` with ``mode`` ``client_credentials`` (client id and secret; a token is
    obtained now) or ``static`` (its token and webhook secret). Nothing is stored unless
    Shopify accepted the credentials."""
    admin_url = creds.admin_url or settings.shopify_admin_url
    if creds.mode == "client_credentials":
        assert creds.client_id and creds.client_secret
        grant = await client_credentials_grant(
            http, admin_url, creds.shop, creds.client_id, creds.client_secret
        )
        creds = replace(
            creds,
            access_token=grant.access_token,
            access_expires_at=grant.expires_at,
            scopes=grant.scope,
        )

    async def token(_: bool) -> str:
        assert creds.access_token is not None
        return creds.access_token

    client = AdminClient(
        http, AdminClient.endpoint_for(admin_url, creds.shop, settings.shopify_api_version), token
    )
    shop = await shop_details(client)
    await subscriptions.reconcile(
        client, f"{settings.stockpulse_base_url.rstrip('/')}{WEBHOOK_PATH}"
    )
    async with pool.connection() as conn, conn.transaction():
        await shops.install(
            conn,
            creds.shop,
            name=shop.name,
            timezone=shop.timezone,
            currency=shop.currency,
        )
        await credentials.save(conn, keyring, creds)
    return Connected(creds.shop, shop.name, shop.timezone, shop.currency)
