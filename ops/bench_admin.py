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


async def backfill_bench(orders: int, products: int, data_dir: str) -> dict[str, Any]:
    """A store of ``products`` products (3 variants, 2 locations each) and ``orders`` orders
    from a fake Shopify's bulk exports into a private, durable PostgreSQL."""
    from datetime import date
    from pathlib import Path

    from connectors.crypto import Keyring, generate_key
    from connectors.db import credentials
    from connectors.db.migrate import migrate
    from connectors.db.pool import open_pool
    from connectors.db.shops import install_shop
    from connectors.shopify.tokens import ShopTokens
    from ops.embedded import LocalPostgres
    from ops.fake_shopify import seed_catalogue, seed_orders
    from streams.backfill import backfill_shop

    postgres = LocalPostgres(Path(data_dir) / "pg", durable=True)
    postgres.start()
    server = FakeShopify()
    try:
        migrate(postgres.url())
        store = server.add_store("bench-history.myshopify.com", client_id="c", client_secret="s")
        seed_catalogue(store, products, variants_per_product=3, locations=2)
        expected = seed_orders(
            store, orders, variant_ids=[v["id"] for v in store.variants], refund_rate=0.05
        )
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
                report = await backfill_shop(pool, client, http, store.domain, date(2000, 1, 1))
                elapsed = time.perf_counter() - started
                # Run again (what a redelivered history does): it must change nothing.
                await backfill_shop(pool, client, http, store.domain, date(2000, 1, 1))
            async with pool.connection() as conn:
                exact = await _lands_exactly(conn, store, expected)
        finally:
            await pool.close()
    finally:
        await server.stop()
        postgres.stop()
    return {
        "products": products,
        "variants": report.variants,
        "stock_levels": report.levels,
        "orders": report.orders,
        "lines": report.lines,
        "exported_lines": lines,
        "seconds": elapsed,
        "lines_per_second": report.lines / elapsed,
        "catalogue_seconds": report.catalogue_seconds,
        "orders_seconds": report.orders_seconds,
        "order_lines_per_second": report.lines / report.orders_seconds,
        "exact": exact,
    }


async def _lands_exactly(conn: Any, store: Any, expected: dict[int, int]) -> bool:
    """Whether every variant's units and every stock level in PostgreSQL are Shopify's."""
    cur = await conn.execute(
        "SELECT variant_id, sum(units)::bigint AS n FROM daily_demand WHERE shop = %s GROUP BY 1",
        (store.domain,),
    )
    units = {r["variant_id"]: int(r["n"]) for r in await cur.fetchall() if r["n"]}
    cur = await conn.execute(
        "SELECT inventory_item_id, location_id, available FROM inventory_levels WHERE shop = %s",
        (store.domain,),
    )
    levels = {
        (r["inventory_item_id"], r["location_id"]): r["available"] for r in await cur.fetchall()
    }
    tracked = {v["inventoryItemId"]: v["tracked"] for v in store.variants}
    shopify_levels = {
        key: level["available"] if tracked[key[0]] else None for key, level in store.levels.items()
    }
    return units == {v: n for v, n in expected.items() if n} and levels == shopify_levels
