"""Broker outages and worker crashes lose nothing and count nothing twice."""

from __future__ import annotations

import asyncio
import random
import time
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from connectors.kafka.admin import ensure_topics
from ops.shopify_payloads import SignedWebhook
from ops.stack import Stack
from tests.conftest import start_stack, stop_stack
from tests.support import (
    Ids,
    deliver,
    deliver_ok,
    make_variant,
    new_shop,
    order_hook,
    product_hook,
    query,
    refund_hook,
    stock_hook,
    stock_of,
    units_sold,
    wait_until,
)


@pytest.fixture(scope="module")
def private_stack() -> Iterator[Stack]:
    """Its own stack: these tests stop the broker and kill the worker."""
    running = start_stack("resilience")
    yield running
    stop_stack(running, "resilience")


def test_broker_outage_answers_503_and_the_retry_is_processed_once(private_stack: Stack) -> None:
    stack = private_stack
    shop = new_shop(stack)
    variant = make_variant()
    deliver_ok(stack, product_hook(shop, variant))
    wait_until(lambda: query(stack, "SELECT 1 FROM variants WHERE shop = %s", shop), what="product")

    hook, _ = order_hook(shop, [(Ids.next(), variant, 3)])
    assert stack.broker is not None
    stack.broker.stop()
    try:
        started = time.monotonic()
        response = deliver(stack, hook)
        assert response.status_code == 503, response.text
        assert time.monotonic() - started < 5, "Shopify gives up after 5 s"
        assert httpx.get(f"{stack.base_url}/readyz").status_code == 503
        assert httpx.get(f"{stack.base_url}/healthz").status_code == 200
    finally:
        stack.broker.start()
    ensure_topics([stack.bootstrap_servers], 4)

    def shopify_retry() -> bool:  # Shopify keeps retrying the same delivery
        return deliver(stack, hook).status_code == 200

    wait_until(shopify_retry, timeout_s=60, what="ingress accepting again")
    wait_until(
        lambda: units_sold(stack, shop, variant.variant_id) >= 3,
        timeout_s=90,
        what="retried order processed",
    )
    marker, _ = order_hook(shop, [(Ids.next(), variant, 10)])
    deliver_ok(stack, marker)
    wait_until(
        lambda: units_sold(stack, shop, variant.variant_id) >= 13, timeout_s=30, what="marker order"
    )
    assert units_sold(stack, shop, variant.variant_id) == 13


def _burst(
    shop: str, rng: random.Random, size: int
) -> tuple[list[SignedWebhook], dict, dict, list]:
    """About ``size`` webhooks for 20 SKUs, with the numbers they must produce."""
    variants = [make_variant(f"SKU-{i:02d}") for i in range(20)]
    catalogue = [product_hook(shop, v) for v in variants]
    hooks: list[SignedWebhook] = []
    lines: dict[int, dict] = {}  # line_item_id → variant, qty, cancelled, restocked
    latest_stock: dict[int, tuple[datetime, int]] = {}
    base = datetime.now(UTC) - timedelta(days=1)
    while len(hooks) < size:
        roll = rng.random()
        if roll < 0.55 or not lines:
            order_lines = [
                (Ids.next(), rng.choice(variants), rng.randint(1, 4))
                for _ in range(rng.randint(1, 3))
            ]
            hook, order_id = order_hook(
                shop, order_lines, created_at=base + timedelta(minutes=rng.randint(0, 1400))
            )
            hooks.append(hook)
            for line_id, v, qty in order_lines:
                lines[line_id] = {
                    "variant": v,
                    "qty": qty,
                    "order": order_id,
                    "cancelled": False,
                    "restocked": 0,
                }
        elif roll < 0.65:
            line_id = rng.choice(list(lines))
            line = lines[line_id]
            cancel, _ = order_hook(
                shop,
                [(line_id, line["variant"], line["qty"])],
                order_id=line["order"],
                cancelled=True,
            )
            hooks.append(cancel)
            line["cancelled"] = True
        elif roll < 0.75:
            line_id = rng.choice(list(lines))
            line = lines[line_id]
            qty = rng.randint(1, line["qty"])
            restock = rng.random() < 0.7
            hooks.append(
                refund_hook(
                    shop,
                    line["order"],
                    [(line_id, line["variant"], qty)],
                    restock_type="return" if restock else "no_restock",
                )
            )
            line["restocked"] += qty if restock else 0
        else:
            v = rng.choice(variants)
            at = base + timedelta(seconds=rng.randint(0, 86_000), microseconds=rng.randint(0, 999))
            level = rng.randint(0, 200)
            hooks.append(stock_hook(shop, v, level, at))
            if v.inventory_item_id not in latest_stock or latest_stock[v.inventory_item_id][0] < at:
                latest_stock[v.inventory_item_id] = (at, level)
        if rng.random() < 0.05:
            hooks.append(hooks[-1])  # Shopify redelivers
    expected_units: dict[int, int] = defaultdict(int)
    for line in lines.values():
        net = 0 if line["cancelled"] else max(line["qty"] - line["restocked"], 0)
        expected_units[line["variant"].variant_id] += net
    expected_stock = {item: level for item, (_, level) in latest_stock.items()}
    rng.shuffle(hooks)  # Shopify does not promise order
    return catalogue + hooks, dict(expected_units), expected_stock, variants


async def test_worker_killed_mid_burst_converges_to_the_exact_numbers(private_stack: Stack) -> None:
    stack = private_stack
    shop = new_shop(stack)
    hooks, expected_units, expected_stock, variants = _burst(shop, random.Random(42), 1000)
    assert len(hooks) >= 1000
    assert stack.worker is not None
    delivered = 0
    killed_at: int | None = None
    gate = asyncio.Semaphore(16)

    async with httpx.AsyncClient(timeout=10) as client:

        async def send(hook: SignedWebhook) -> None:
            nonlocal delivered, killed_at
            async with gate:
                response = await client.post(
                    f"{stack.base_url}/webhooks/shopify", content=hook.body, headers=hook.headers
                )
                assert response.status_code == 200, response.text
                delivered += 1
                if delivered == 350 and killed_at is None:
                    killed_at = delivered
                    stack.worker.kill()  # SIGKILL: no flush, no commit, no goodbye

        await asyncio.gather(*(send(h) for h in hooks[:20]))  # catalogue first
        await asyncio.gather(*(send(h) for h in hooks[20:]))
    assert killed_at is not None and not stack.worker.running

    def actual_units() -> dict[int, int]:
        return {
            v.variant_id: units_sold(stack, shop, v.variant_id)
            for v in variants
            if units_sold(stack, shop, v.variant_id)
        }

    partial = actual_units()
    assert partial != {k: v for k, v in expected_units.items() if v}, "worker finished before kill"

    stack.start_worker()
    wanted_units = {k: v for k, v in expected_units.items() if v}
    wait_until(
        lambda: actual_units() == wanted_units,
        timeout_s=120,
        what="demand to converge after restart",
    )
    for v in variants:
        if v.inventory_item_id in expected_stock:
            assert stock_of(stack, shop, v) == expected_stock[v.inventory_item_id], v.sku
    print(
        f"\nburst of {len(hooks)} webhooks, worker SIGKILLed after {killed_at}; "
        f"converged to {sum(wanted_units.values())} units over {len(wanted_units)} SKUs"
    )
