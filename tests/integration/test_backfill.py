"""Order history from a fake Shopify's bulk export: lands exactly once, with live webhooks for
the same orders arriving meanwhile, and after a backfill killed half-way is run again."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator

import httpx
import pytest

from connectors.shopify.webhooks import sign
from ops.fake_shopify import FakeShopify, FakeStore, seed_orders
from ops.stack import Stack
from tests.support import Ids, query, scalar

CLIENT_ID, CLIENT_SECRET = "backfill-app", "backfill-app-secret"


@pytest.fixture
async def fake() -> AsyncIterator[FakeShopify]:
    server = FakeShopify()
    await server.start()
    yield server
    await server.stop()


def new_store(server: FakeShopify, orders: int) -> tuple[FakeStore, dict[int, int]]:
    store = server.add_store(
        f"hist{Ids.next()}.myshopify.com", client_id=CLIENT_ID, client_secret=CLIENT_SECRET
    )
    first_id = Ids.next()
    Ids._next += 200_000_000  # seed_orders uses ids up to first_id + ~101,000,000
    expected = seed_orders(store, orders, variants=30, first_id=first_id)
    return store, expected


def units(stack: Stack, shop: str) -> dict[int, int]:
    rows = query(
        stack,
        "SELECT variant_id, sum(units) FROM daily_demand WHERE shop = %s GROUP BY 1",
        shop,
    )
    return {v: int(n) for v, n in rows if n}


def as_webhook(order: dict) -> dict:
    """The same order as Shopify's orders/updated webhook body names it."""
    return {
        "id": order["id"],
        "created_at": order["createdAt"],
        "updated_at": order["updatedAt"],
        "cancelled_at": order["cancelledAt"],
        "test": False,
        "line_items": [
            {
                "id": li["id"],
                "variant_id": li["variantId"],
                "product_id": li["productId"],
                "sku": li["sku"],
                "quantity": li["quantity"],
                "current_quantity": li["currentQuantity"],
                "price": li["price"],
            }
            for li in order["lineItems"]
        ],
    }


async def cli(stack: Stack, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ops.cli",
        *args,
        env={**os.environ, **stack.env()},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )


async def test_history_lands_once_while_webhooks_for_the_same_orders_arrive(
    stack: Stack, fake: FakeShopify
) -> None:
    store, expected = new_store(fake, 3000)
    connect = await cli(
        stack,
        *("connect", "--shop", store.domain, "--admin-url", fake.admin_url()),
        *("--client-id", CLIENT_ID, "--client-secret", CLIENT_SECRET),
    )
    # Webhooks for 300 of the same orders, delivered while the backfill runs.
    for _ in range(1200):
        if scalar(stack, "SELECT 1 FROM shops WHERE domain = %s", store.domain):
            break
        await asyncio.sleep(0.05)
    async with httpx.AsyncClient(timeout=10) as http:
        for order in store.orders[::10]:
            body = httpx.Request("POST", "/", json=as_webhook(order)).content
            headers = {
                "Content-Type": "application/json",
                "X-Shopify-Topic": "orders/updated",
                "X-Shopify-Shop-Domain": store.domain,
                "X-Shopify-Event-Id": f"live-{order['id']}",
                "X-Shopify-Webhook-Id": f"live-{order['id']}",
                "X-Shopify-Hmac-Sha256": sign(body, CLIENT_SECRET.encode()),
            }
            answer = await http.post(
                f"{stack.base_url}/webhooks/shopify", content=body, headers=headers
            )
            assert answer.status_code == 200, answer.text
    out, _ = await asyncio.wait_for(connect.communicate(), 240)
    assert connect.returncode == 0, out.decode()[-3000:]
    assert "backfilled" in out.decode()
    for _ in range(200):
        if units(stack, store.domain) == expected:
            break
        await asyncio.sleep(0.1)
    assert units(stack, store.domain) == expected
    assert scalar(stack, "SELECT status FROM backfills WHERE shop = %s", store.domain) == "done"


async def test_a_backfill_killed_half_way_resumes_and_lands_once(
    stack: Stack, fake: FakeShopify
) -> None:
    store, expected = new_store(fake, 4000)
    connect = await cli(
        stack,
        *("connect", "--shop", store.domain, "--admin-url", fake.admin_url()),
        *("--client-id", CLIENT_ID, "--client-secret", CLIENT_SECRET, "--no-backfill"),
    )
    out, _ = await connect.communicate()
    assert connect.returncode == 0, out.decode()
    first = await cli(stack, "backfill", "--shop", store.domain, "--no-progress")
    applied = 0
    for _ in range(600):
        if applied >= 1000:
            break
        assert first.returncode is None, (await first.communicate())[0].decode()[-2000:]
        await asyncio.sleep(0.05)
        applied = (
            scalar(stack, "SELECT orders_applied FROM backfills WHERE shop = %s", store.domain) or 0
        )
    if applied < 1000:
        first.send_signal(signal.SIGINT)
        said = (await asyncio.wait_for(first.communicate(), 30))[0].decode()
        raise AssertionError(f"the backfill did not get going ({applied}): {said[-3000:]}")
    first.send_signal(signal.SIGKILL)
    await first.wait()
    assert units(stack, store.domain) != expected
    second = await cli(stack, "backfill", "--shop", store.domain, "--no-progress")
    out, _ = await asyncio.wait_for(second.communicate(), 240)
    assert second.returncode == 0, out.decode()[-3000:]
    assert "resumed past" in out.decode()
    assert units(stack, store.domain) == expected
