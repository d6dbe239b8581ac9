"""The Admin GraphQL client against a fake Shopify that is a real HTTP server on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from connectors.shopify.admin import AdminClient, AdminError, Unauthorized, Unavailable
from ops.fake_shopify import Bucket, FakeShopify, FakeStore

SHOP = "fake-store.myshopify.com"
PRODUCTS = (
    "query P($first: Int!, $after: String) { products(first: $first, after: $after) {"
    " nodes { id title } pageInfo { hasNextPage endCursor } } }"
)
SHOP_QUERY = "{ shop { ianaTimezone currencyCode } }"


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakeShopify, FakeStore]]:
    server = FakeShopify()
    store = server.add_store(SHOP, timezone="Europe/Berlin", currency="EUR")
    store.tokens.add("good-token")
    store.products = [
        {"id": f"gid://shopify/Product/{i}", "title": f"P{i}", "updatedAt": "x"}
        for i in range(1, 26)
    ]
    await server.start()
    yield server, store
    await server.stop()


def client_for(server: FakeShopify, http: httpx.AsyncClient, tokens: list[str]) -> AdminClient:
    async def token(force_refresh: bool) -> str:
        if force_refresh:
            tokens.pop(0)
        return tokens[0]

    endpoint = AdminClient.endpoint_for(server.admin_url(), SHOP, "2025-10")
    return AdminClient(http, endpoint, token)


async def test_a_burst_of_500_queries_never_exceeds_the_cost_budget(fake) -> None:
    server, store = fake
    # A small bucket that refills fast: 500 queries of cost 11 need ~5,500 points, well
    # over the 200 the bucket holds at once.
    store.bucket = Bucket(maximum=200.0, restore_rate=1000.0, available=200.0)
    async with httpx.AsyncClient(timeout=5) as http:
        client = client_for(server, http, ["good-token"])
        results = await asyncio.gather(
            *(client.query(PRODUCTS, {"first": 10, "after": None}) for _ in range(500))
        )
    assert all(len(r["products"]["nodes"]) == 10 for r in results)
    print(f"\n500 queries: {store.served} served, {store.throttled} throttled by the server")
    assert store.served == 500
    # The first query's cost is a guess (50) until Shopify reports it; after that, none.
    assert store.throttled == 0, store.throttled


async def test_throttled_5xx_and_timeouts_are_recovered_from(fake) -> None:
    server, store = fake
    server.fail_next(3, status=503)
    async with httpx.AsyncClient(timeout=0.5) as http:
        client = client_for(server, http, ["good-token"])
        first = await client.query(SHOP_QUERY)
        assert first["shop"] == {"ianaTimezone": "Europe/Berlin", "currencyCode": "EUR"}
        server.delay_next(2, 1.0)  # longer than the client waits
        assert (await client.query(SHOP_QUERY))["shop"]["currencyCode"] == "EUR"
        # Another app of the store's drains the bucket behind the client's back.
        store.bucket = Bucket(maximum=100.0, restore_rate=50.0, available=0.0)
        titles = [p["title"] async for p in client.pages(PRODUCTS, {"first": 10}, ("products",))]
    assert titles == [f"P{i}" for i in range(1, 26)]
    assert client.throttled >= 1  # the drained bucket answered THROTTLED with HTTP 200 first


async def test_a_stale_token_is_refreshed_once_and_other_4xx_are_not_retried(fake) -> None:
    server, _ = fake
    async with httpx.AsyncClient(timeout=5) as http:
        refreshed = client_for(server, http, ["expired-token", "good-token"])
        assert (await refreshed.query(SHOP_QUERY))["shop"]["currencyCode"] == "EUR"
        with pytest.raises(Unauthorized):
            await client_for(server, http, ["bad", "still-bad"]).query(SHOP_QUERY)
        with pytest.raises(AdminError):
            await client_for(server, http, ["good-token"]).query("{ nope }")


async def test_a_store_that_keeps_failing_is_given_up_on(fake) -> None:
    server, _ = fake
    server.fail_next(50, status=502)
    async with httpx.AsyncClient(timeout=5) as http:
        with pytest.raises(Unavailable):
            await client_for(server, http, ["good-token"]).query(SHOP_QUERY)
