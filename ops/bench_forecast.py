"""``stockpulse bench forecast``: online model speed and nightly Prophet throughput.

The 1-vs-2-process comparison runs the very function the nightly batch maps over its processes
(``ops.nightly.fit_one``) on seeded synthetic SKUs with two years of history. The full-size run
is ``stockpulse nightly`` itself against a private, durable PostgreSQL holding that history, so
its time includes reading the history, detecting stockouts and committing the forecasts.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from rich.progress import track

from connectors.db.migrate import migrate
from models.online import OnlineDemandModel
from models.synthetic import SyntheticSku, generate
from ops.embedded import LocalPostgres
from ops.nightly import FitJob, _init_worker, fit_one, run_nightly
from ops.stack import install_shop

BENCH_SHOP = "bench.myshopify.com"


def bench_online(n_skus: int = 1000, days: int = 730) -> dict[str, float]:
    skus = generate(n_skus=n_skus, days=days, seed=3)
    rows = [(s.dates, s.sales.astype(float).tolist(), s.in_stock.tolist()) for s in skus]
    models = [OnlineDemandModel() for _ in rows]
    updates = 0
    started = time.process_time()
    for model, (dates, sales, in_stock) in zip(models, rows, strict=True):
        for day, units, ok in zip(dates, sales, in_stock, strict=True):
            model.learn_day(day, units, ok)
        updates += len(dates)
    cpu = time.process_time() - started
    latencies = []
    for model, (dates, _, _) in zip(models, rows, strict=True):
        first = dates[-1] + timedelta(days=1)
        t = time.perf_counter()
        model.forecast(first, 90)
        latencies.append(time.perf_counter() - t)
    latencies.sort()
    return {
        "updates": updates,
        "updates_per_cpu_second": updates / cpu,
        "forecast_90d_p50_ms": statistics.median(latencies) * 1000,
        "forecast_90d_p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
    }


def bench_nightly(n_skus: int, processes: int, days: int = 730) -> dict[str, Any]:
    jobs = [
        FitJob(i, s.dates[0], s.sales.astype(float), s.in_stock, "US")
        for i, s in enumerate(generate(n_skus=n_skus, days=days, seed=4))
    ]
    os.environ["OPENBLAS_NUM_THREADS"] = "1"
    started = time.perf_counter()
    with ProcessPoolExecutor(processes, initializer=_init_worker) as pool:
        # Warm each process (imports, cmdstan load) outside the timing, as a nightly run of
        # many shops pays it once.
        list(pool.map(fit_one, jobs[:processes]))
        started = time.perf_counter()
        results = list(
            track(
                pool.map(fit_one, jobs, chunksize=4),
                total=len(jobs),
                description=f"{processes} process(es)",
            )
        )
    wall = time.perf_counter() - started
    cpu = [r["fit_seconds"] for r in results]
    return {
        "skus": len(jobs),
        "processes": processes,
        "wall_seconds": wall,
        "cpu_seconds_per_sku": sum(cpu) / len(cpu),
        "skus_per_second": len(jobs) / wall,
    }


def bench_nightly_stored(n_skus: int, processes: int, days: int = 730) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="stockpulse-bench-nightly-") as tmp:
        postgres = LocalPostgres(Path(tmp) / "pg")
        postgres.start()
        try:
            url = postgres.url()
            migrate(url)
            install_shop(url, BENCH_SHOP)
            today = datetime.now(UTC).date()
            skus = generate(n_skus=n_skus, days=days, seed=4, end=today - timedelta(days=1))
            _store(url, skus)
            started = time.perf_counter()
            (report,) = asyncio.run(run_nightly(url, [BENCH_SHOP], processes))
            wall = time.perf_counter() - started
            with psycopg.connect(url) as conn:
                written = conn.execute("SELECT count(*) FROM run_forecasts").fetchone()
        finally:
            postgres.stop()
    return {
        "skus": n_skus,
        "fitted": report.fitted,
        "written": written[0] if written else 0,
        "processes": processes,
        "wall_seconds": wall,
        "cpu_seconds_per_sku": report.cpu_seconds / max(report.fitted, 1),
    }


def _store(url: str, skus: list[SyntheticSku]) -> None:
    """Each SKU as the pipeline stores it: a variant, its net units per day, and a stock level
    whenever it ran out or was restocked (levels carry forward between rows)."""
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        with cur.copy(
            "COPY variants (shop, variant_id, product_id, sku, product_title, inventory_item_id,"
            " price) FROM STDIN"
        ) as copy:
            for i, s in enumerate(skus, start=1):
                copy.write_row((BENCH_SHOP, i, i, s.sku, s.sku, i, s.price))
        with cur.copy(
            "COPY daily_demand (shop, variant_id, day, units, revenue) FROM STDIN"
        ) as copy:
            for i, s in track(list(enumerate(skus, start=1)), description="storing history"):
                for day, units in zip(s.dates, s.sales.tolist(), strict=True):
                    if units:
                        copy.write_row((BENCH_SHOP, i, day, units, round(units * s.price, 2)))
        with cur.copy(
            "COPY stock_history (shop, inventory_item_id, location_id, available, ts) FROM STDIN"
        ) as copy:
            for i, s in enumerate(skus, start=1):
                previous = True
                for day, in_stock in zip(s.dates, s.in_stock.tolist(), strict=True):
                    if in_stock != previous:
                        at = datetime(day.year, day.month, day.day, tzinfo=UTC)
                        copy.write_row((BENCH_SHOP, i, 1, 40 if in_stock else 0, at))
                        previous = in_stock
        conn.execute("DELETE FROM demand_corrections")  # no worker here to take them
