"""Connecting a store of one's own through a fake Shopify (a real HTTP server on loopback):
credentials proven and sealed, time zone and currency from Shopify, tokens renewed in time,
and the store's webhooks verified with its own app's secret only."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from connectors.crypto import Keyring
from connectors.db import credentials
from connectors.db.pool import open_pool
from connectors.shopify.admin import AdminClient
from connectors.shopify.subscriptions import TOPICS
from connectors.shopify.tokens import ShopTokens
from connectors.shopify.webhooks import sign
from ops.fake_shopify import FakeShopify, FakeStore
from ops.shopify_payloads import signed_webhook
from ops.stack import Stack
from tests.integration import store_support
from tests.support import Ids, deliver, make_variant, product_hook, scalar, wait_until

CLIENT_ID, CLIENT_SECRET = "client-id-1", "the-stores-own-app-secret"


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakeShopify, FakeStore]]:
    server = FakeShopify()
    store = server.add_store(
        f"own{Ids.next()}.myshopify.com",
        timezone="Australia/Sydney",
        currency="AUD",
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
    )
    await server.start()
    yield server, store
    await server.stop()


async def cli(stack: Stack, *args: str) -> tuple[int, str]:
    process = await store_support.cli(stack, *args)
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode or 0, out.decode()


async def test_a_store_connects_with_client_credentials_and_its_webhooks_use_its_secret(
    stack: Stack, fake: tuple[FakeShopify, FakeStore]
) -> None:
    server, store = fake
    wrong, said = await cli(
        stack,
        *("connect", "--shop", store.domain, "--admin-url", server.admin_url()),
        *("--client-id", CLIENT_ID, "--client-secret", "not-the-secret"),
    )
    assert wrong != 0 and "not connected" in said, said
    assert scalar(stack, "SELECT count(*) FROM shops WHERE domain = %s", store.domain) == 0

    code, said = await cli(
        stack,
        *("connect", "--shop", store.domain, "--admin-url", server.admin_url()),
        *("--client-id", CLIENT_ID, "--client-secret", CLIENT_SECRET, "--no-backfill"),
    )
    assert code == 0, said
    assert scalar(stack, "SELECT timezone FROM shops WHERE domain = %s", store.domain) == (
        "Australia/Sydney"
    )
    assert scalar(stack, "SELECT currency FROM shops WHERE domain = %s", store.domain) == "AUD"
    sealed = scalar(
        stack, "SELECT client_secret FROM shop_credentials WHERE shop = %s", store.domain
    )
    assert CLIENT_SECRET.encode() not in bytes(sealed)

    hook = product_hook(store.domain, make_variant())  # signed with the deployment's secret
    assert (await asyncio.to_thread(deliver, stack, hook)).status_code == 401
    own_secret = CLIENT_SECRET.encode()
    own = {**hook.headers, "X-Shopify-Hmac-Sha256": sign(hook.body, own_secret)}
    response = await asyncio.to_thread(deliver, stack, hook, headers=own)
    assert response.status_code == 200
    await asyncio.to_thread(
        wait_until,
        lambda: scalar(stack, "SELECT 1 FROM variants WHERE shop = %s", store.domain),
        20,
        "the store's own webhook applied",
    )
    # The merchant removes the app: tokens dropped, syncing stops, data kept until shop/redact.
    uninstalled = signed_webhook(
        "app/uninstalled", store.domain, {"id": 1, "myshopify_domain": store.domain}, CLIENT_SECRET
    )
    assert (await asyncio.to_thread(deliver, stack, uninstalled)).status_code == 200
    # Refused at once, not accepted (and applied) until the worker had applied the uninstall;
    # signed with the shop's own secret, it is told the shop is not installed.
    after = product_hook(store.domain, make_variant("AFTER-UNINSTALL"))
    signed_after = {**after.headers, "X-Shopify-Hmac-Sha256": sign(after.body, own_secret)}
    answer = await asyncio.to_thread(deliver, stack, after, headers=signed_after)
    assert answer.status_code == 404 and "not installed" in answer.text
    await asyncio.to_thread(
        wait_until,
        lambda: scalar(
            stack, "SELECT uninstalled_at IS NOT NULL FROM shops WHERE domain = %s", store.domain
        ),
        20,
        "the shop marked uninstalled",
    )
    # The tokens are gone; the app's secret stays, for the privacy webhooks still to come.
    left = "SELECT count(*) FROM shop_credentials WHERE shop = %s AND client_secret IS NOT NULL"
    assert scalar(stack, left, store.domain) == 1
    tokens = "SELECT count(*) FROM shop_credentials WHERE shop = %s AND access_token IS NOT NULL"
    assert scalar(stack, tokens, store.domain) == 0
    assert scalar(stack, "SELECT count(*) FROM variants WHERE shop = %s", store.domain) == 1
    assert (await asyncio.to_thread(deliver, stack, after, headers=signed_after)).status_code == 404

    # Shopify erases the shop 48 hours after the uninstall, signed with the shop's own app.
    privacy = {"shop_id": 1, "shop_domain": store.domain}
    for topic in ("customers/data_request", "customers/redact", "shop/redact"):
        hook = signed_webhook(topic, store.domain, privacy, CLIENT_SECRET)
        answer = await asyncio.to_thread(deliver, stack, hook)
        assert answer.status_code == 200, (topic, answer.text)
    await asyncio.to_thread(
        wait_until,
        lambda: not scalar(stack, "SELECT count(*) FROM shops WHERE domain = %s", store.domain),
        20,
        "the uninstalled shop erased",
    )
    assert scalar(stack, "SELECT count(*) FROM variants WHERE shop = %s", store.domain) == 0
    assert scalar(stack, "SELECT count(*) FROM shop_credentials WHERE shop = %s", store.domain) == 0


async def test_a_token_is_renewed_before_it_expires_and_renewals_do_not_race(
    stack: Stack, fake: tuple[FakeShopify, FakeStore]
) -> None:
    server, store = fake
    keyring = Keyring.parse(stack.env()["STOCKPULSE_ENCRYPTION_KEYS"])
    pool = await open_pool(stack.database_url, max_size=8)
    try:
        async with httpx.AsyncClient(timeout=10) as http:
            code, said = await cli(
                stack,
                *("connect", "--shop", store.domain, "--admin-url", server.admin_url()),
                *("--client-id", CLIENT_ID, "--client-secret", CLIENT_SECRET, "--no-backfill"),
            )
            assert code == 0, said
            assert len(store.tokens) == 1
            async with pool.connection() as conn:
                creds = await credentials.load(conn, keyring, store.domain)
                assert creds is not None and creds.access_expires_at is not None
                assert creds.access_expires_at > datetime.now(UTC) + timedelta(hours=23)
                # Three minutes left: inside the renewal window.
                await conn.execute(
                    "UPDATE shop_credentials SET access_expires_at = now() + interval '3 minutes'"
                    " WHERE shop = %s",
                    (store.domain,),
                )
                await conn.commit()
            # Ten processes' worth of callers at once: one renewal, everyone gets its token.
            sources = [
                ShopTokens(pool, keyring, http, store.domain, server.admin_url()) for _ in range(10)
            ]
            tokens = await asyncio.gather(*(source(False) for source in sources))
            assert len(set(tokens)) == 1 and len(store.tokens) == 2
            client = AdminClient(
                http,
                AdminClient.endpoint_for(server.admin_url(), store.domain, "2025-10"),
                sources[0],
            )
            store.tokens.discard(tokens[0])  # Shopify revoked it early: a 401, renewed once
            shop = await client.query("{ shop { currencyCode } }")
            assert shop == {"shop": {"currencyCode": "AUD"}} and len(store.tokens) == 2
    finally:
        await pool.close()


async def test_webhook_subscriptions_are_reconciled_not_piled_up(
    stack: Stack, fake: tuple[FakeShopify, FakeStore]
) -> None:
    server, store = fake
    ours = f"{stack.base_url}/webhooks/shopify"
    connect = (
        *("connect", "--shop", store.domain, "--admin-url", server.admin_url()),
        *("--client-id", CLIENT_ID, "--client-secret", CLIENT_SECRET, "--no-backfill"),
    )
    code, said = await cli(stack, *connect)
    assert code == 0, said

    def mine() -> list[str]:
        return sorted(s["topic"] for s in store.subscriptions if s["uri"] == ours)

    assert mine() == sorted(TOPICS)
    # Someone else's subscription, a copy of ours, and one of ours to a topic we dropped.
    store.subscriptions += [
        {
            "id": "gid://shopify/WebhookSubscription/1",
            "topic": "ORDERS_CREATE",
            "uri": "https://elsewhere.example/hook",
        },
        {"id": "gid://shopify/WebhookSubscription/2", "topic": "ORDERS_CREATE", "uri": ours},
        {"id": "gid://shopify/WebhookSubscription/3", "topic": "ORDERS_PAID", "uri": ours},
    ]
    code, said = await cli(stack, *connect)
    assert code == 0, said
    assert mine() == sorted(TOPICS)
    assert any(s["uri"] == "https://elsewhere.example/hook" for s in store.subscriptions)
