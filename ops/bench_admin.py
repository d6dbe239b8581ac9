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
