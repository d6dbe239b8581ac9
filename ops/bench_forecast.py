"""``stockpulse bench forecast``: online model speed and nightly refit throughput.

The 1-vs-2-process comparison runs the very function the nightly batch maps over its processes
for Prophet, its dearest member (``streams.refit.prophet_timed``), on seeded synthetic SKUs with
two years of history. The full-size run
is ``stockpulse nightly`` itself against a private, durable PostgreSQL holding that history, so
its time includes reading the history, detecting stockouts and committing the forecasts.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row
from rich.progress import track

from connectors.db import forecasts
from connectors.db.history import DemandRow, StockRow, VariantRow, copy_history
from connectors.db.migrate import migrate
from connectors.db.shops import install_shop
from models.combined import HORIZON
from models.members import ProphetJob
from models.online import OnlineDemandModel
from models.synthetic import SyntheticSku, generate
from ops.embedded import LocalPostgres
from streams.refit import init_fit_process, prophet_timed, run_refit

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
    """Prophet, the dearest member, fitted per SKU over 1 or 2 processes."""
    jobs = [
        ProphetJob(s.sales.astype(float), s.in_stock, s.dates[0], "US", HORIZON)
        for s in generate(n_skus=n_skus, days=days, seed=4)
    ]
    os.environ["OPENBLAS_NUM_THREADS"] = "1"
    started = time.perf_counter()
    with ProcessPoolExecutor(processes, initializer=init_fit_process) as pool:
        # Warm each process (imports, cmdstan load) outside the timing, as a nightly run of
        # many shops pays it once.
        list(pool.map(prophet_timed, jobs[:processes]))
        started = time.perf_counter()
        results = list(
            track(
                pool.map(prophet_timed, jobs, chunksize=4),
                total=len(jobs),
                description=f"{processes} process(es)",
            )
        )
    wall = time.perf_counter() - started
    cpu = [seconds for _, seconds in results]
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
            copy_history(url, BENCH_SHOP, *_history(skus))
            # The shop's first night, 28 days ago: it has no stored run, so it first makes
            # the validation run of 56 days ago. Tonight then finds the run of 28 days before
            # stored (that first night's), as every night after a shop's first weeks does.
            first = asyncio.run(_refit_timed(url, processes, today - timedelta(days=28)))
            night = asyncio.run(_refit_timed(url, processes, today))
        finally:
            postgres.stop()
    return {"skus": n_skus, "processes": processes, "first": first, "night": night}


async def _refit_timed(url: str, processes: int, run_day: date) -> dict[str, Any]:
    """The bench shop's refit as of ``run_day``: its report, wall time and the forecasts it
    committed."""
    started = time.perf_counter()
    (report,) = await run_refit(url, [BENCH_SHOP], processes, run_day, show_progress=True)
    wall = time.perf_counter() - started
    async with await psycopg.AsyncConnection.connect(url, row_factory=dict_row) as conn:
        written = await forecasts.count_run_forecasts(conn, BENCH_SHOP, run_day)
    return {
        "fitted": report.fitted,
        "written": written,
        "wall_seconds": wall,
        "cpu_seconds_per_sku": report.cpu_seconds / max(report.fitted, 1),
        "member_seconds": report.member_seconds,
        "validation_run": report.validation_day.isoformat() if report.validation_day else None,
        "validation_seconds": report.validation_seconds,
    }


def _history(
    skus: list[SyntheticSku],
) -> tuple[list[VariantRow], Iterator[DemandRow], Iterator[StockRow]]:
    """Each SKU as the pipeline stores it: a variant, its net units per day, and a stock level
    whenever it ran out or was restocked (levels carry forward between rows)."""
    variants: list[VariantRow] = [
        (i, i, s.sku, s.sku, i, s.price) for i, s in enumerate(skus, start=1)
    ]

    def demand() -> Iterator[DemandRow]:
        for i, s in track(list(enumerate(skus, start=1)), description="storing history"):
            for day, units in zip(s.dates, s.sales.tolist(), strict=True):
                if units:
                    yield (i, day, units, round(units * s.price, 2))

    def stock() -> Iterator[StockRow]:
        for i, s in enumerate(skus, start=1):
            previous = True
            for day, in_stock in zip(s.dates, s.in_stock.tolist(), strict=True):
                if in_stock != previous:
                    at = datetime(day.year, day.month, day.day, tzinfo=UTC)
                    yield (i, 1, 40 if in_stock else 0, at)
                    previous = in_stock

    return variants, demand(), stock()
