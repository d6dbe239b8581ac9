"""The nightly refit: Prophet for every SKU with enough history, shop by shop.

Run by ``stockpulse nightly`` and, in a child process, by the worker's schedule
(``python -m streams.refit``, :mod:`streams.refit_schedule`): Prophet and its process pool stay
out of the worker. Both entry points end in :func:`refit_and_report`, so they print and exit
alike.

Each shop's run is a row in ``forecast_runs`` keyed by the shop-local day it forecasts from.
Forecasts are written to it in small committed batches as the worker processes finish them,
so a run killed half-way resumes where it stopped; the dashboard and the stream keep reading
the last committed run until this one is complete and switched to in one transaction.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import os
import resource
import signal
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from connectors.db import forecasts as db
from connectors.db.pool import DictConnection, open_pool
from connectors.db.shops import active_shops
from connectors.settings import get_settings
from models.accuracy import ACCURACY_AFTER_DAYS, mase, seasonal_naive_scale
from models.combined import HORIZON, LOW_HISTORY_DAYS
from models.inventory import in_stock_days
from models.prophet_forecaster import ProphetForecaster
from streams.forecasting import abc_ranking

log = logging.getLogger("stockpulse.refit")
WRITE_EVERY = 25  # forecasts per committed batch: what a crash can cost
ACCURACY_WITHIN_DAYS = 35
# EX_TEMPFAIL: another process holds a shop's run and will commit it. The schedule then looks
# again in a while rather than start a child every minute.
EXIT_RUNNING_ELSEWHERE = 75


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


def init_fit_process() -> None:
    """Each fitting process uses one core: the pool already has one process per core."""
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
    past: list[dict[str, Any]], history: db.DemandHistory, sellable: np.ndarray, run_day: date
) -> float | None:
    """MASE of the oldest scoreable earlier run's forecasts against what then sold."""
    for run in past:
        start = (run["first_day"] - history.first_day).days
        end = (run_day - history.first_day).days
        if start <= 2 * 7 or end - start < ACCURACY_AFTER_DAYS:
            continue
        actual = history.units[start:end]
        ok = sellable[start:end]
        predicted = np.asarray(run["mean"][: end - start], dtype=float)
        if not ok.any() or predicted.size < actual.size:
            continue
        before = history.units[:start].tolist()
        score = mase(actual[ok].tolist(), predicted[ok].tolist(), before)
        if math.isfinite(score) and seasonal_naive_scale(before):
            return score
    return None


async def refit_shop(
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
    sellable = {
        v: in_stock_days(h.units, h.first_day, h.stock_levels) for v, h in histories.items()
    }
    eligible = {v: h for v, h in histories.items() if int(sellable[v].sum()) >= LOW_HISTORY_DAYS}
    done = await db.done_in_run(conn, run_id)
    past = await db.past_forecasts(
        conn, shop, run_day - timedelta(days=ACCURACY_WITHIN_DAYS), run_day
    )
    classes = await abc_ranking(conn, shop, run_day)
    await conn.commit()  # end the reads; each batch below commits on its own
    todo = [v for v in eligible if v not in done]
    report = RunReport(shop, run_day, "committed", resumed=len(done))
    task = progress.add_task(shop, total=len(eligible), completed=len(done)) if progress else None
    loop = asyncio.get_running_loop()
    futures = [
        loop.run_in_executor(
            pool,
            fit_one,
            FitJob(v, eligible[v].first_day, eligible[v].units, sellable[v], country),
        )
        for v in todo
    ]
    batch: list[dict[str, Any]] = []
    for next_done in asyncio.as_completed(futures):
        row = await next_done
        history = eligible[row["variant_id"]]
        row |= {
            "first_day": run_day,
            "mase": score_past_runs(
                past.get(row["variant_id"], []), history, sellable[row["variant_id"]], run_day
            ),
            "abc_class": classes.get(row["variant_id"]),
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


async def run_refit(
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
                shops = await active_shops(conn)
            columns = (
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
            )
            pool = ProcessPoolExecutor(
                processes or os.cpu_count() or 1, initializer=init_fit_process
            )
            try:
                with Progress(*columns, disable=not show_progress) as progress:
                    for shop in shops:
                        try:
                            reports.append(await refit_shop(conn, pool, shop, run_day, progress))
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


def refit_and_report(
    shops: Sequence[str], processes: int = 0, run_day: date | None = None, progress: bool = True
) -> int:
    """Refit ``shops`` (all installed ones when empty), print a line per shop and return the
    exit code: 0, 1 when a shop failed (the schedule retries later), 130 when stopped, or
    :data:`EXIT_RUNNING_ELSEWHERE`."""
    settings = get_settings()
    # The worker stops a scheduled run with SIGTERM; treat it as Ctrl-C so the run unwinds.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        reports = asyncio.run(
            run_refit(
                settings.database_url,
                list(shops) or None,
                processes or settings.nightly_processes,
                run_day,
                progress,
            )
        )
    except KeyboardInterrupt:
        print("stopped; what was written is kept and the next run resumes from it", file=sys.stderr)
        return 130
    for r in reports:
        per_sku = r.cpu_seconds / r.fitted if r.fitted else 0.0
        print(
            f"{r.shop} {r.run_day or ''}: {r.status}; fitted {r.fitted}, "
            f"resumed past {r.resumed}, {per_sku:.3f} s CPU per SKU"
        )
    if any(r.status.startswith("failed") for r in reports):
        return 1
    if any(r.status == "running elsewhere" for r in reports):
        return EXIT_RUNNING_ELSEWHERE
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m streams.refit [--shop S]… [--processes N] [--day D] [--no-progress]``."""
    parser = argparse.ArgumentParser(
        prog="python -m streams.refit", description="Refit Prophet for every SKU with 30+ days."
    )
    parser.add_argument("--shop", dest="shops", action="append", default=[], help="only these")
    parser.add_argument("--processes", type=int, default=0, help="fitting processes; 0: one/core")
    parser.add_argument("--day", type=date.fromisoformat, help="forecast from this local day")
    parser.add_argument("--no-progress", dest="progress", action="store_false")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    return refit_and_report(args.shops, args.processes, args.day, args.progress)


if __name__ == "__main__":
    # Run the importable module rather than this ``__main__`` copy of it: one copy of its
    # classes, and what the process pool pickles (``fit_one``, ``FitJob``) is found by its real
    # name whatever the start method.
    from streams.refit import main as refit_main

    sys.exit(refit_main())
