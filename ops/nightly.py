"""``stockpulse nightly``: refit Prophet for every SKU with enough history, shop by shop.

Each shop's run is a row in ``forecast_runs`` keyed by the shop-local day it forecasts from.
Forecasts are written to it in small committed batches as the worker processes finish them,
so a run killed half-way resumes where it stopped; the dashboard and the stream keep reading
the last committed run until this one is complete and switched to in one transaction.
"""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from connectors.db import forecasts as db
from connectors.db.pool import DictConnection, open_pool
from models.accuracy import seasonal_naive_scale
from models.combined import HORIZON, LOW_HISTORY_DAYS
from models.nightly import ProphetForecaster
from models.policy import ABC_WINDOW_DAYS, abc_classes

log = logging.getLogger("stockpulse.nightly")
WRITE_EVERY = 25  # forecasts per committed batch: what a crash can cost
ACCURACY_AFTER_DAYS = 7  # a run is scored once a week of actuals has come in
ACCURACY_WITHIN_DAYS = 35


@dataclass(frozen=True)
class FitJob:
    variant_id: int
    first_day: date
    units: np.ndarray
    in_stock: np.ndarray
    country: str | None


def fit_one(job: FitJob) -> dict[str, Any]:
    """Fit one SKU in a worker process; returns the row for ``run_forecasts``."""
    cpu = _cpu_seconds()
    model = ProphetForecaster(job.country)
    model.fit(job.units, job.in_stock, job.first_day)
    forecast = model.forecast(HORIZON)
    return {
        "variant_id": job.variant_id,
        "mean": [round(float(x), 3) for x in forecast.mean],
        "lower": [round(float(x), 3) for x in forecast.lower],
        "upper": [round(float(x), 3) for x in forecast.upper],
        "model": ProphetForecaster.name,
        "fit_seconds": _cpu_seconds() - cpu,
    }


def _cpu_seconds() -> float:
    """CPU of this process and of the cmdstan processes it waited for."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def _init_worker() -> None:
    os.environ["OPENBLAS_NUM_THREADS"] = "1"


@dataclass
class RunReport:
    shop: str
    run_day: date | None  # None when the run failed before it knew the shop's day
    status: str  # "committed", "already committed", "running elsewhere" or "failed: …"
    fitted: int = 0
    resumed: int = 0
    cpu_seconds: float = 0.0


def score_past_runs(
    past: list[dict[str, Any]], history: db.DemandHistory, run_day: date
) -> float | None:
    """MASE of the oldest scoreable earlier run's forecasts against what then sold."""
    for run in past:
        start = (run["first_day"] - history.first_day).days
        end = (run_day - history.first_day).days
        if start <= 2 * 7 or end - start < ACCURACY_AFTER_DAYS:
            continue
        actual = history.units[start:end]
        ok = history.in_stock[start:end]
        predicted = np.asarray(run["mean"][: end - start], dtype=float)
        if not ok.any() or predicted.size < actual.size:
            continue
        scale = seasonal_naive_scale(history.units[:start].tolist())
        if not scale:
            continue
        return float(np.abs(actual[ok] - predicted[ok]).mean() / scale)
    return None


async def nightly_shop(
    conn: DictConnection,
    pool: ProcessPoolExecutor,
    shop: str,
    run_day: date | None = None,
    progress: Progress | None = None,
) -> RunReport:
    today, _, country = await db.shop_today(conn, shop)
    run_day = run_day or today
    locked = await db.try_lock_nightly(conn, shop)
    await conn.commit()
    if not locked:
        return RunReport(shop, run_day, "running elsewhere")
    try:
        return await _run_locked(conn, pool, shop, run_day, country, progress)
    finally:
        await conn.rollback()
        await db.unlock_nightly(conn, shop)
        await conn.commit()


async def _run_locked(
    conn: DictConnection,
    pool: ProcessPoolExecutor,
    shop: str,
    run_day: date,
    country: str | None,
    progress: Progress | None,
) -> RunReport:
    run_id, status = await db.open_run(conn, shop, run_day)
    await conn.commit()
    if status == "committed":
        return RunReport(shop, run_day, "already committed")
    histories = await db.demand_history(conn, shop, run_day - timedelta(days=1))
    eligible = {v: h for v, h in histories.items() if int(h.in_stock.sum()) >= LOW_HISTORY_DAYS}
    done = await db.done_in_run(conn, run_id)
    past = await db.past_forecasts(
        conn, shop, run_day - timedelta(days=ACCURACY_WITHIN_DAYS), run_day
    )
    revenue = await db.revenue_by_sku(conn, shop, run_day - timedelta(days=ABC_WINDOW_DAYS))
    classes = abc_classes({str(v): r for v, r in revenue.items()})
    await conn.commit()  # end the reads; each batch below commits on its own
    todo = [v for v in eligible if v not in done]
    report = RunReport(shop, run_day, "committed", resumed=len(done))
    task = progress.add_task(shop, total=len(eligible), completed=len(done)) if progress else None
    loop = asyncio.get_running_loop()
    futures = [
        loop.run_in_executor(
            pool,
            fit_one,
            FitJob(v, eligible[v].first_day, eligible[v].units, eligible[v].in_stock, country),
        )
        for v in todo
    ]
    batch: list[dict[str, Any]] = []
    for next_done in asyncio.as_completed(futures):
        row = await next_done
        history = eligible[row["variant_id"]]
        row |= {
            "first_day": run_day,
            "mase": score_past_runs(past.get(row["variant_id"], []), history, run_day),
            "abc_class": classes.get(str(row["variant_id"])),
        }
        report.cpu_seconds += row["fit_seconds"]
        report.fitted += 1
        batch.append(row)
        if len(batch) >= WRITE_EVERY:
            await _write(conn, run_id, shop, batch)
        if progress is not None and task is not None:
            progress.advance(task)
    await _write(conn, run_id, shop, batch)
    await db.commit_run(conn, run_id, shop, run_day)
    await conn.commit()
    return report


async def _write(conn: DictConnection, run_id: int, shop: str, batch: list[dict[str, Any]]) -> None:
    if batch:
        await db.add_run_forecasts(conn, run_id, shop, batch)
        await conn.commit()
        batch.clear()


async def run_nightly(
    database_url: str,
    shops: list[str] | None = None,
    processes: int = 0,
    run_day: date | None = None,
    show_progress: bool = True,
) -> list[RunReport]:
    db_pool = await open_pool(database_url, max_size=2)
    reports = []
    try:
        async with db_pool.connection() as conn:
            if not shops:
                cur = await conn.execute(
                    "SELECT domain FROM shops WHERE uninstalled_at IS NULL ORDER BY domain"
                )
                shops = [r["domain"] for r in await cur.fetchall()]
            columns = (
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
            )
            pool = ProcessPoolExecutor(processes or os.cpu_count() or 1, initializer=_init_worker)
            try:
                with Progress(*columns, disable=not show_progress) as progress:
                    for shop in shops:
                        try:
                            reports.append(await nightly_shop(conn, pool, shop, run_day, progress))
                        except Exception as exc:
                            # One shop's failure must not cost the shops after it their
                            # forecasts; the caller sees it in the report and the exit code.
                            log.exception("the nightly refit of %s failed", shop)
                            reports.append(RunReport(shop, run_day, f"failed: {exc!r}"))
                            await conn.rollback()
            finally:
                # Stopped early (Ctrl-C, SIGTERM), queued fits are dropped rather than run:
                # what was committed is kept and the next run resumes from it.
                pool.shutdown(wait=True, cancel_futures=True)
    finally:
        await db_pool.close()
    return reports
