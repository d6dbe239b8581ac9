"""Broker outages and worker crashes lose nothing and count nothing twice."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from kafka import KafkaConsumer, TopicPartition

from connectors.kafka.admin import ensure_topics
from connectors.kafka.topics import FORECASTS, UPDATES
from ops.shopify_payloads import SignedWebhook
from ops.stack import Stack
from tests.conftest import start_stack, stop_stack
from tests.support import (
    Ids,
    deliver,
    deliver_ok,
    make_variant,
    mixed_burst,
    new_shop,
    order_hook,
    plan_as_of,
    product_hook,
    query,
    sku_api,
    stock_hook,
    stock_of,
    units_sold,
    wait_until,
)

STALL_SECONDS = 8


@pytest.fixture(scope="module")
def private_stack() -> Iterator[Stack]:
    """Its own stack: these tests stop the broker and kill the worker."""
    running = start_stack("resilience", {"STALL_SECONDS": str(STALL_SECONDS)})
    yield running
    stop_stack(running, "resilience")


def test_a_broker_outage_loses_nothing_acknowledged(private_stack: Stack) -> None:
    """The inbox makes a 200 durable without the broker; the relay delivers it once it is back
    (Tansu's memory log is empty after its restart, so nothing can come from the old one)."""
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
        assert response.status_code == 200, response.text
        assert time.monotonic() - started < 1, "the answer must not wait for the broker"
        assert deliver(stack, hook).status_code == 200  # Shopify's redelivery: stored once
        assert httpx.get(f"{stack.base_url}/readyz").status_code == 503
        assert httpx.get(f"{stack.base_url}/healthz").status_code == 200
    finally:
        stack.broker.start()
    ensure_topics([stack.bootstrap_servers], 4)
    wait_until(
        lambda: units_sold(stack, shop, variant.variant_id) >= 3,
        timeout_s=90,
        what="the order accepted during the outage",
    )
    marker, _ = order_hook(shop, [(Ids.next(), variant, 10)])
    deliver_ok(stack, marker)
    wait_until(
        lambda: units_sold(stack, shop, variant.variant_id) >= 13, timeout_s=30, what="marker order"
    )
    assert units_sold(stack, shop, variant.variant_id) == 13
    wait_until(
        lambda: httpx.get(f"{stack.base_url}/readyz").status_code == 200,
        timeout_s=30,
        what="ready again",
    )


def test_a_stall_is_visible_in_metrics_and_readiness(private_stack: Stack) -> None:
    stack = private_stack
    assert stack.worker is not None
    shop = new_shop(stack)
    variant = make_variant()
    stack.worker.stop()
    try:
        deliver_ok(stack, order_hook(shop, [(Ids.next(), variant, 1)])[0])

        def oldest() -> float:
            body = httpx.get(f"{stack.base_url}/readyz").json()
            return float(body.get("oldest_unapplied_webhook_seconds", 0))

        wait_until(lambda: oldest() > STALL_SECONDS, timeout_s=STALL_SECONDS + 10, what="age")
        ready = httpx.get(f"{stack.base_url}/readyz")
        assert ready.status_code == 503 and ready.json()["checks"]["pipeline"] is False
        metrics = httpx.get(f"{stack.base_url}/metrics").text
        line = next(
            x for x in metrics.splitlines() if x.startswith("stockpulse_oldest_unapplied_webhook")
        )
        assert float(line.split()[-1]) > STALL_SECONDS
    finally:
        stack.start_worker()
    wait_until(
        lambda: units_sold(stack, shop, variant.variant_id) == 1, timeout_s=60, what="catch-up"
    )
    wait_until(
        lambda: httpx.get(f"{stack.base_url}/readyz").status_code == 200,
        timeout_s=30,
        what="ready again",
    )


async def test_a_backlog_being_worked_off_is_behind_not_stalled(private_stack: Stack) -> None:
    """After a restart, or behind a burst, the oldest waiting webhook can be older than
    STALL_SECONDS while the worker is applying as fast as it can. /readyz said "stalled" then
    and kept a restarted deployment unready until it had drained (35 s in one CI run)."""
    stack = private_stack
    assert stack.worker is not None
    shop = new_shop(stack)
    variants = [make_variant(f"DRAIN-{i:02d}") for i in range(20)]
    for v in variants:
        deliver_ok(stack, product_hook(shop, v))
    wait_until(
        lambda: query(stack, "SELECT count(*) FROM variants WHERE shop = %s", shop)[0][0] == 20,
        what="the catalogue",
    )
    base = datetime.now(UTC) - timedelta(hours=2)  # each level newer than the one before
    hooks = [
        stock_hook(shop, variants[n % 20], n, base + timedelta(seconds=n)) for n in range(4000)
    ]
    stack.worker.stop()
    try:
        gate = asyncio.Semaphore(16)
        async with httpx.AsyncClient(timeout=10) as client:

            async def send(hook: SignedWebhook) -> None:
                async with gate:
                    response = await client.post(
                        f"{stack.base_url}/webhooks/shopify",
                        content=hook.body,
                        headers=hook.headers,
                    )
                    assert response.status_code == 200, response.text

            await asyncio.gather(*(send(h) for h in hooks))
        wait_until(
            lambda: httpx.get(f"{stack.base_url}/readyz").json()["checks"]["pipeline"] is False,
            timeout_s=STALL_SECONDS + 15,
            what="a stall while the worker is down",
        )
    finally:
        stack.start_worker()
    seen: list[dict] = []

    def drained() -> bool:
        seen.append(httpx.get(f"{stack.base_url}/readyz").json())
        return seen[-1].get("oldest_unapplied_webhook_seconds", 1) == 0

    wait_until(drained, timeout_s=120, what="the backlog worked off")
    behind_but_moving = [
        body
        for body in seen
        if body["oldest_unapplied_webhook_seconds"] > STALL_SECONDS and body["checks"]["pipeline"]
    ]
    print(
        f"\n{len(seen)} /readyz answers while draining; last while behind: {behind_but_moving[-1:]}"
    )
    assert behind_but_moving, seen[-5:]
    last = variants[3999 % 20]
    assert stock_of(stack, shop, last) == 3999


async def test_worker_killed_mid_burst_converges_to_the_exact_numbers(private_stack: Stack) -> None:
    stack = private_stack
    shop = new_shop(stack)
    hooks, expected_units, expected_stock, variants = mixed_burst(shop, random.Random(42), 1000)
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


def test_the_stored_plan_survives_a_worker_restart(private_stack: Stack) -> None:
    stack = private_stack
    assert stack.worker is not None
    shop = new_shop(stack)
    variant = make_variant("PLAN-KEPT")
    deliver_ok(stack, product_hook(shop, variant))
    deliver_ok(stack, order_hook(shop, [(Ids.next(), variant, 3)])[0])
    first = wait_until(
        lambda: (row := sku_api(stack, shop).get(variant.variant_id)) and row["plan_as_of"] and row,
        timeout_s=30,
        what="a stored plan",
    )
    stack.worker.kill()
    try:
        while_down = sku_api(stack, shop)[variant.variant_id]
        assert while_down == first  # read from PostgreSQL, not from the worker
    finally:
        stack.start_worker()
    deliver_ok(stack, stock_hook(shop, variant, 40, datetime.now(UTC)))
    # The stock's plan, not the first plan after the restart: that may be a replan of what the
    # killed worker had not yet cleared from its outbox, published at the new one's start.
    newer = wait_until(
        lambda: (
            (row := sku_api(stack, shop)[variant.variant_id])["plan_as_of"] != first["plan_as_of"]
            and row["stock"] == 40
            and row
        ),
        timeout_s=60,
        what="a newer plan from the restarted worker",
    )
    assert newer["days_of_cover_basis"] == "forecast" and newer["stock"] == 40


def test_a_worker_killed_just_after_a_stock_change_still_replans_the_sku(
    private_stack: Stack,
) -> None:
    """Killed 0.1 s after a stock change, a worker had published the update but not the
    plan, and nothing brought the plan (nor the shop's low-stock alert) back; an outside test
    saw it 3 times in 4. Here the kill falls as soon as the stock is applied, inside the
    quarter second the worker gathers changes for a forecast round."""
    stack = private_stack
    assert stack.worker is not None
    shop = new_shop(stack)
    variant = make_variant("KILLED-AFTER")
    deliver_ok(stack, product_hook(shop, variant))
    deliver_ok(stack, stock_hook(shop, variant, 10, datetime.now(UTC)))
    wait_until(
        lambda: query(
            stack,
            "SELECT 1 FROM sku_plans WHERE shop = %s AND variant_id = %s AND stock = 10",
            shop,
            variant.variant_id,
        ),
        timeout_s=30,
        what="a plan at 10 units",
    )
    # Past the shop's first republish, which a restarted worker would otherwise redo.
    wait_until(
        lambda: query(stack, "SELECT 1 FROM forecast_publications WHERE shop = %s", shop),
        what="the shop's first republish",
    )
    deliver_ok(stack, stock_hook(shop, variant, 2, datetime.now(UTC)))
    wait_until(lambda: stock_of(stack, shop, variant) == 2, what="applied")
    stack.worker.kill()
    stack.start_worker()
    wait_until(
        lambda: query(
            stack,
            "SELECT 1 FROM sku_plans WHERE shop = %s AND variant_id = %s AND stock = 2",
            shop,
            variant.variant_id,
        ),
        timeout_s=60,
        what="the plan to follow the stock down to 2 after the kill",
    )


def _keys_on(stack: Stack, topic: str) -> set[bytes]:
    """The keys on ``topic`` from the start of its log."""
    consumer = KafkaConsumer(bootstrap_servers=stack.bootstrap_servers, consumer_timeout_ms=2000)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        return {record.key for record in consumer if record.key is not None}
    finally:
        consumer.close()


def test_a_broker_that_came_back_empty_gets_every_skus_update_and_forecast_again(
    private_stack: Stack,
) -> None:
    """The embedded broker keeps its log in memory; `up` restarts the worker with it. The
    latest message per key is the truth for consumers, so a SKU that did not change since
    must be on the topics again (an outside test read 25 of 64 SKUs after a restart)."""
    stack = private_stack
    assert stack.broker is not None and stack.worker is not None
    shop = new_shop(stack)
    variants = [make_variant(f"KEPT-{n}") for n in range(2)]
    for variant in variants:
        deliver_ok(stack, product_hook(shop, variant))
        deliver_ok(stack, stock_hook(shop, variant, 30, datetime.now(UTC)))
    for variant in variants:
        # A minute: a worker killed just before (the test above) holds its partitions until
        # its session times out.
        wait_until(
            lambda v=variant: plan_as_of(stack, shop, v.variant_id), timeout_s=60, what="a plan"
        )
    stack.broker.stop()
    stack.worker.kill()
    stack.broker.start()
    ensure_topics([stack.bootstrap_servers], 4)
    stack.start_worker()
    keys = {f"{shop}|{v.variant_id}".encode() for v in variants}
    for topic in (UPDATES, FORECASTS):
        wait_until(
            lambda topic=topic: keys <= _keys_on(stack, topic),
            timeout_s=60,
            what=f"every SKU back on {topic}",
        )
