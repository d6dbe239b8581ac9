"""A store's catalogue and order history from a fake Shopify's bulk exports: lands exactly once,
with live webhooks for the same orders arriving meanwhile, and after a backfill killed half-way
is run again."""

from __future__ import annotations

import asyncio
import signal

import httpx

from ops.fake_shopify import FakeShopify, FakeStore, seed_catalogue, seed_orders
from ops.stack import Stack
from tests.integration.store_support import (
    cli,
    finished,
    levels,
    post_signed,
    shopify_levels,
    units,
)
from tests.support import Ids, auth, grant, scalar

CLIENT_ID, CLIENT_SECRET = "backfill-app", "backfill-app-secret"


def new_store(
    server: FakeShopify, orders: int, products: int = 20
) -> tuple[FakeStore, dict[int, int]]:
    """A store with ``products`` products (3 variants, stock at 2 locations each) and
    ``orders`` orders over two years, a tenth of them with a refund."""
    store = server.add_store(
        f"hist{Ids.next()}.myshopify.com", client_id=CLIENT_ID, client_secret=CLIENT_SECRET
    )
    first_id = Ids.next()
    Ids._next += 400_000_000  # the catalogue's and the orders' ids stay clear of other tests
    seed_catalogue(store, products, variants_per_product=3, locations=2, first_id=first_id)
    expected = seed_orders(
        store,
        orders,
        variant_ids=[v["id"] for v in store.variants],
        refund_rate=0.1,
        first_id=first_id + 200_000_000,
    )
    return store, {variant: n for variant, n in expected.items() if n}


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


def as_refund_webhook(order: dict, refund: dict) -> dict:
    """One of the order's refunds as Shopify's refunds/create webhook body names it."""
    variants = {li["id"]: li["variantId"] for li in order["lineItems"]}
    return {
        "id": refund["id"],
        "order_id": order["id"],
        "created_at": refund["createdAt"],
        "refund_line_items": [
            {
                "line_item_id": line["lineItemId"],
                "quantity": line["quantity"],
                "restock_type": line["restockType"].lower(),
                "line_item": {"variant_id": variants[line["lineItemId"]]},
            }
            for line in refund["lines"]
        ],
    }


async def test_history_lands_once_while_webhooks_for_the_same_orders_arrive(
    stack: Stack, fake_shopify: FakeShopify
) -> None:
    # 300 products here (900 variants, 1,800 levels): the shared stack's worker then forecasts
    # every SKU it touched. `stockpulse bench backfill` runs the full 2,000 products and
    # 50,000 orders and checks the same exactness.
    store, expected = new_store(fake_shopify, 3000, products=300)
    connect = await cli(
        stack,
        *("connect", "--shop", store.domain, "--admin-url", fake_shopify.admin_url()),
        *("--client-id", CLIENT_ID, "--client-secret", CLIENT_SECRET),
        "--no-refit",  # fitting every SKU is the nightly batch's benchmark, not this test's
    )
    # Webhooks for 300 of the same orders, and for every refund of them and of a hundred
    # more, delivered while the backfill runs.
    for _ in range(1200):
        if scalar(stack, "SELECT 1 FROM shops WHERE domain = %s", store.domain):
            break
        await asyncio.sleep(0.05)
    live = [("orders/updated", as_webhook(o)) for o in store.orders[::10]]
    live += [
        ("refunds/create", as_refund_webhook(order, refund))
        for order in store.orders[::3]
        for refund in order["refunds"]
    ]
    async with httpx.AsyncClient(timeout=10) as http:
        for topic, payload in live:
            answer = await post_signed(http, stack, store.domain, topic, payload, CLIENT_SECRET)
            assert answer.status_code == 200, answer.text
    assert "backfilled" in await finished(connect)
    for _ in range(200):
        if units(stack, store.domain) == expected:
            break
        await asyncio.sleep(0.1)
    assert units(stack, store.domain) == expected
    assert scalar(stack, "SELECT status FROM backfills WHERE shop = %s", store.domain) == "done"
    # The catalogue: every variant, and its stock at every location.
    assert scalar(
        stack, "SELECT count(*) FROM variants WHERE shop = %s AND sku IS NOT NULL", store.domain
    ) == len(store.variants)
    assert levels(stack, store.domain) == shopify_levels(store)
    assert scalar(stack, "SELECT count(*) FROM locations WHERE shop = %s", store.domain) == 2
    refunds = scalar(stack, "SELECT count(*) FROM refund_lines WHERE shop = %s", store.domain)
    assert refunds == sum(len(o["refunds"]) for o in store.orders) > 0


async def test_a_backfill_killed_half_way_resumes_and_lands_once(
    stack: Stack, fake_shopify: FakeShopify
) -> None:
    store, expected = new_store(fake_shopify, 4000)
    connect = await cli(
        stack,
        *("connect", "--shop", store.domain, "--admin-url", fake_shopify.admin_url()),
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
    # The dashboard shows how far it got, and keeps asking while it is under way.
    grant(stack, store.domain)
    signed_in = auth(stack)
    async with httpx.AsyncClient(timeout=10) as http:
        banner = (
            await http.get(f"{stack.base_url}/shops/{store.domain}/sync", headers=signed_in)
        ).text
        state = (
            await http.get(f"{stack.base_url}/api/v1/shops/{store.domain}/sync", headers=signed_in)
        ).json()
    assert "History is backfilling" in banner and "orders" in banner and "%" in banner
    assert 'hx-trigger="every 2s"' in banner
    assert state["backfill"]["status"] == "running"
    assert state["backfill"]["orders_applied"] >= 1000
    assert 0 < state["backfill"]["objects_read"] < state["backfill"]["objects_total"]
    second = await cli(stack, "backfill", "--shop", store.domain, "--no-progress", "--no-refit")
    said = await finished(second)
    assert "resumed past" in said
    assert units(stack, store.domain) == expected
    async with httpx.AsyncClient(timeout=10) as http:
        banner = (
            await http.get(f"{stack.base_url}/shops/{store.domain}/sync", headers=signed_in)
        ).text
    assert "every 2s" not in banner  # done: the page stops asking
