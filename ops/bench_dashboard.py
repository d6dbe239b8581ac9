"""Server time of a large shop's pages: the dashboard and the reorder plan at 5,000 SKUs.

A shop is seeded straight into PostgreSQL with ``generate_series`` (variants, two stock levels
each, ~180 days of daily demand, stored plans for nine SKUs in ten; the tenth shows the 28-day
average's days of cover), then the real web app (``web.app.create_app``, its lifespan
included) answers requests in this process. Each request is timed inside the ASGI app, from
the call to the last body byte it sends, so the figures are the server's: no network, no client
parsing.

Run it with ``python -m ops.bench_dashboard`` (``--help`` for the options).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import httpx
import psycopg

from connectors.db.shops import install_shop
from connectors.settings import Settings
from ops.account_tools import bench_member
from ops.stack import Stack

BENCH_SHOP = "bench-plan.myshopify.com"
HISTORY_DAYS = 180
WARM_UP_REQUESTS = 5

# One table of per-SKU constants, so every seeded table agrees on a SKU's stock and demand
# rate. Rates run from 0 (never sells) to 9.5 units a day; one SKU in 97 is untracked.
_SEED_SKUS = """
CREATE TEMP TABLE bench_skus ON COMMIT DROP AS
SELECT i,
       %(base)s::bigint + i AS variant_id,
       %(base)s::bigint + 100000000 + i AS inventory_item_id,
       (i %% 20) * 0.5 AS rate,
       CASE WHEN i %% 97 = 0 THEN NULL ELSE (i * 37) %% 300 END AS stock_1,
       CASE WHEN i %% 97 = 0 THEN NULL ELSE (i * 11) %% 50 END AS stock_2
  FROM generate_series(1, %(skus)s) i
"""

_SEED = [
    """
    INSERT INTO variants (shop, variant_id, product_id, sku, product_title, variant_title,
                          inventory_item_id, price, tracked, updated_at)
    SELECT %(shop)s, variant_id, %(base)s::bigint + 200000000 + i / 3,
           'BENCH-' || lpad(i::text, 5, '0'), 'Product ' || (i / 3),
           (ARRAY['S', 'M', 'L'])[i %% 3 + 1], inventory_item_id, 5 + i %% 50,
           stock_1 IS NOT NULL, now()
      FROM bench_skus
    """,
    """
    INSERT INTO inventory_levels (shop, inventory_item_id, location_id, available, updated_at)
    SELECT %(shop)s, inventory_item_id, location.id,
           CASE location.id WHEN 1 THEN stock_1 ELSE stock_2 END, now()
      FROM bench_skus CROSS JOIN (VALUES (1), (2)) AS location (id)
    """,
    """
    INSERT INTO daily_demand (shop, variant_id, day, units, revenue)
    SELECT %(shop)s, variant_id, day, units, units * (5 + i %% 50)
      FROM bench_skus
     CROSS JOIN generate_series(current_date - %(days)s + 1, current_date, interval '1 day')
           AS d (day)
     CROSS JOIN LATERAL (SELECT floor(random() * 2 * rate)::int AS units) sold
     WHERE units > 0
    """,
    """
    INSERT INTO sku_plans (shop, variant_id, first_day, mean, lower, upper, method, members,
                           confidence, mase, stock, days_of_cover, stockout_date, safety_stock,
                           reorder_point, reorder_quantity, overstock, dead_stock_days,
                           abc_class, as_of)
    SELECT %(shop)s, variant_id, current_date,
           array_fill(rate::real, ARRAY[90]), array_fill((rate * 0.6)::real, ARRAY[90]),
           array_fill((rate * 1.4)::real, ARRAY[90]), 'combined',
           '[{"model": "river", "weight": 0.5}, {"model": "prophet", "weight": 0.5}]',
           (ARRAY['high', 'medium', 'low'])[i %% 3 + 1], 0.6 + (i %% 7) * 0.1, stock,
           cover, current_date + floor(cover)::int, rate * 3, rate * 17,
           greatest(0, ceil(rate * 47 - coalesce(stock, 0)))::int, coalesce(cover > 180, false),
           NULL,
           CASE WHEN i %% 10 < 2 THEN 'A' WHEN i %% 10 < 5 THEN 'B' ELSE 'C' END, now()
      FROM bench_skus
     CROSS JOIN LATERAL (SELECT stock_1 + stock_2 AS stock) total
     CROSS JOIN LATERAL (SELECT CASE WHEN rate > 0 THEN stock / rate END AS cover) days
     WHERE i %% 10 <> 9
    """,
]


def seed_shop(
    database_url: str, shop: str, skus: int, days: int = HISTORY_DAYS, base: int = 7_000_000_000
) -> None:
    """``skus`` SKUs with ``days`` days of demand and their plans, in one transaction."""
    install_shop(database_url, shop)
    params = {"shop": shop, "skus": skus, "days": days, "base": base}
    with psycopg.connect(database_url) as conn:
        # The shop's days are UTC days (install_shop's default time zone).
        conn.execute("SET TIME ZONE 'UTC'")
        conn.execute("SELECT setseed(0.42)")  # the same demand on every run
        conn.execute(_SEED_SKUS, params)
        # The trigger notes each closed day written as a correction for the worker's online
        # models, one upsert per row (minutes here); SKUs without a model have nothing to
        # correct. Switched off inside this transaction only, so no other session sees it off.
        conn.execute("ALTER TABLE daily_demand DISABLE TRIGGER daily_demand_corrections")
        for statement in _SEED:
            conn.execute(statement, params)
        conn.execute("ALTER TABLE daily_demand ENABLE TRIGGER daily_demand_corrections")
        conn.commit()
        conn.autocommit = True
        # Query plans from the statistics a live database would have, not a fresh load's guesses.
        conn.execute("ANALYZE variants, inventory_levels, daily_demand, sku_plans")


class ServerTimer:
    """ASGI middleware noting how long the app took over each HTTP request: from the call to
    the last body message it sent."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.last_seconds = 0.0

    async def __call__(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[MutableMapping[str, Any]]],
        send: Callable[[MutableMapping[str, Any]], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()

        async def timed_send(message: MutableMapping[str, Any]) -> None:
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                self.last_seconds = time.perf_counter() - started

        await self.app(scope, receive, timed_send)


def _percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


async def plan_page_bench(
    data_dir: Path,
    *,
    skus: int = 5000,
    requests: int = 200,
    database_url: str | None = None,
    bootstrap_servers: str | None = None,
) -> dict[str, Any]:
    """Seed a shop of ``skus`` SKUs, then time ``requests`` requests of each page with an API
    token: server time p50/p95 in milliseconds, with the size of each answer. A PostgreSQL and
    a broker of its own are started in ``data_dir`` unless ``database_url`` and
    ``bootstrap_servers`` name running ones (the broker only feeds the app's WebSocket hub)."""
    from web.app import create_app

    stack = Stack(
        data_dir, durable=False, database_url=database_url, bootstrap_servers=bootstrap_servers
    )
    await asyncio.to_thread(stack.start_infrastructure)
    try:
        started = time.perf_counter()
        await asyncio.to_thread(seed_shop, stack.database_url, BENCH_SHOP, skus)
        seed_seconds = time.perf_counter() - started
        token = await asyncio.to_thread(bench_member, stack.database_url, BENCH_SHOP)
        app = create_app(
            Settings(
                database_url=stack.database_url,
                kafka_bootstrap_servers=stack.bootstrap_servers,
                stockpulse_encryption_keys=stack.encryption_keys(),
            )
        )
        timer = ServerTimer(app)
        targets = {
            "dashboard": f"/shops/{BENCH_SHOP}",
            "plan, first page": f"/shops/{BENCH_SHOP}/plan",
            "plan by days of cover": f"/shops/{BENCH_SHOP}/plan?sort=days_of_cover&order=asc",
            "plan API by suggested quantity": (
                f"/api/v1/shops/{BENCH_SHOP}/plan?sort=reorder_quantity&order=desc&per_page=200"
            ),
        }
        results: dict[str, Any] = {}
        async with (
            app.lifespan(),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=timer),
                base_url="http://127.0.0.1",
                headers={"Authorization": f"Bearer {token}"},
                timeout=60,
            ) as client,
        ):
            for name, path in targets.items():
                samples = []
                for attempt in range(WARM_UP_REQUESTS + requests):
                    answer = await client.get(path)
                    if answer.status_code != 200:
                        raise RuntimeError(f"{path}: {answer.status_code} {answer.text[:300]}")
                    if attempt >= WARM_UP_REQUESTS:
                        samples.append(timer.last_seconds * 1000)
                results[name] = {
                    "path": path,
                    "p50_ms": round(statistics.median(samples), 1),
                    "p95_ms": round(_percentile(samples, 0.95), 1),
                    "max_ms": round(max(samples), 1),
                    "bytes": len(answer.content),
                }
    finally:
        await asyncio.to_thread(stack.stop)
    return {"skus": skus, "requests": requests, "seed_seconds": round(seed_seconds, 1), **results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--skus", type=int, default=5000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument(
        "--database-url", help="an empty database to seed (migrated first) instead of a private one"
    )
    parser.add_argument("--bootstrap-servers", help="a running broker instead of a local one")
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="stockpulse-bench-plan-"))
    try:
        result = asyncio.run(
            plan_page_bench(
                data_dir,
                skus=args.skus,
                requests=args.requests,
                database_url=args.database_url,
                bootstrap_servers=args.bootstrap_servers,
            )
        )
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
