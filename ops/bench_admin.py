"""``stockpulse bench shopify``: the Admin API client's own cost, against the fake Shopify.

* Throttle bookkeeping: what the client adds to each call to stay within the cost budget
  (reading the throttle status, projecting the bucket, admitting the call), timed over many
  calls without the network.
* A burst against the fake Shopify on loopback: calls per second and how many the server had
  to throttle (it should be none).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

import httpx
from rich.progress import track

from connectors.shopify.admin import AdminClient, CostBucket
from ops.fake_shopify import Bucket, FakeShopify

QUERY = (
    "query P($first: Int!, $after: String) { products(first: $first, after: $after) {"
    " nodes { id title } pageInfo { hasNextPage endCursor } } }"
)


def bookkeeping(calls: int = 200_000) -> dict[str, float]:
    bucket = CostBucket()
    status = {"maximumAvailable": 2000.0, "currentlyAvailable": 1500, "restoreRate": 100.0}
    samples = []
    for chunk in track(range(calls // 1000), description="throttle bookkeeping"):
        started = time.perf_counter()
        for i in range(1000):
            now = chunk * 1000 + i * 0.001
            bucket.update(status, now, in_flight=22.0)
            bucket.wait_for(11.0, now)
            bucket.take(11.0, now)
        samples.append((time.perf_counter() - started) / 1000)
    return {
        "calls": calls,
        "per_call_us_p50": statistics.median(samples) * 1e6,
        "per_call_us_max": max(samples) * 1e6,
    }


async def burst(queries: int = 2000) -> dict[str, Any]:
    server = FakeShopify()
    store = server.add_store("bench.myshopify.com")
    store.tokens.add("t")
    store.products = [{"id": str(i), "title": f"P{i}", "updatedAt": "x"} for i in range(50)]
    store.bucket = Bucket(maximum=1000.0, restore_rate=5000.0, available=1000.0)
    await server.start()
    try:

        async def token(_: bool) -> str:
            return "t"

        async with httpx.AsyncClient(timeout=10) as http:
            client = AdminClient(
                http, AdminClient.endpoint_for(server.admin_url(), store.domain, "2025-10"), token
            )
            started = time.perf_counter()
            await asyncio.gather(
                *(client.query(QUERY, {"first": 10, "after": None}) for _ in range(queries))
            )
            elapsed = time.perf_counter() - started
    finally:
        await server.stop()
    return {
        "queries": queries,
        "seconds": elapsed,
        "per_second": queries / elapsed,
        "throttled_by_server": store.throttled,
    }


async def backfill_bench(orders: int, data_dir: str) -> dict[str, Any]:
    """``orders`` orders from a fake Shopify's bulk export into a private, durable PostgreSQL."""
    from datetime import date
    from pathlib import Path

    from connectors.crypto import Keyring, generate_key
    from connectors.db import credentials
    from connectors.db.migrate import migrate
    from connectors.db.pool import open_pool
    from connectors.db.shops import install_shop
    from connectors.shopify.tokens import ShopTokens
    from ops.embedded import LocalPostgres
    from ops.fake_shopify import seed_orders
    from streams.backfill import backfill_orders

    postgres = LocalPostgres(Path(data_dir) / "pg", durable=True)
    postgres.start()
    server = FakeShopify()
    try:
        migrate(postgres.url())
        store = server.add_store("bench-history.myshopify.com", client_id="c", client_secret="s")
        seed_orders(store, orders, variants=2000)
        lines = sum(len(o["lineItems"]) for o in store.orders)
        await server.start()
        install_shop(postgres.url(), store.domain)
        keyring = Keyring.parse(generate_key())
        pool = await open_pool(postgres.url(), max_size=4)
        try:
            async with pool.connection() as conn, conn.transaction():
                await credentials.save(
                    conn,
                    keyring,
                    credentials.Credentials(
                        shop=store.domain,
                        mode="client_credentials",
                        client_id="c",
                        client_secret="s",
                        admin_url=server.admin_url(),
                    ),
                )
            async with httpx.AsyncClient(timeout=60) as http:
                tokens = ShopTokens(pool, keyring, http, store.domain, server.admin_url())
                client = AdminClient(
                    http,
                    AdminClient.endpoint_for(server.admin_url(), store.domain, "2025-10"),
                    tokens,
                )
                started = time.perf_counter()
                report = await backfill_orders(pool, client, http, store.domain, date(2000, 1, 1))
                elapsed = time.perf_counter() - started
        finally:
            await pool.close()
    finally:
        await server.stop()
        postgres.stop()
    return {
        "orders": report.orders,
        "lines": report.lines,
        "exported_lines": lines,
        "seconds": elapsed,
        "lines_per_second": report.lines / elapsed,
    }
