"""The nightly refit: the combined forecast for every SKU with enough history, shop by shop.

The members (:mod:`models.members`) are fitted on all of a shop's SKUs: the statsforecast
ones in one batch, Prophet per SKU in a process pool. Each SKU's blend takes its weights from
the member forecasts the run of 28 days ago stored, set against what sold since
(:mod:`models.ensemble`): no validation refits. A new shop has no such run yet: a night that
finds none makes it, the members fitted on the history as it stood that day, so its blends
are weighted from its first night, as ``forecast evaluate`` measures them. That costs one more
fit of the members once a week in its first four weeks, none after.

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
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from typing import Any

import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from connectors.db import forecasts as db
from connectors.db.pool import DictConnection, open_pool
from connectors.db.shops import active_shops, shop_held
from connectors.outages import log_failure
from connectors.settings import get_settings
from models.accuracy import ACCURACY_AFTER_DAYS, mase, seasonal_naive_scale
from models.combined import HORIZON, NIGHTLY_MIN_DAYS, forecast_nightly
from models.ensemble import (
    VALIDATION_DAYS,
    VALIDATION_RUNS,
    ShopBlend,
    Validation,
)
from models.forecast import Forecast
from models.inventory import in_stock_days
from models.members import (
    STATISTICAL,
    ProphetJob,
    ShopFit,
    add_statistical,
    established,
    fit_statistical,
    lifecycle_trust,
    prepare_shop,
    prophet_forecast,
    prophet_jobs,
)
from streams.forecasting import abc_ranking

log = logging.getLogger("stockpulse.refit")
WRITE_EVERY = 25  # forecasts per committed batch: what a crash can cost
ACCURACY_WITHIN_DAYS = 35
# EX_TEMPFAIL: another process holds a shop's run and will commit it. The schedule then looks
# again in a while rather than start a child every minute.
EXIT_RUNNING_ELSEWHERE = 75
UNINSTALLED = "failed: the shop is uninstalled"
NO_SUCH_SHOP = "failed: no such shop"


def prophet_timed(job: ProphetJob) -> tuple[Forecast, float]:
    """One SKU's Prophet fit in a worker process, with the CPU it took."""
    cpu = _cpu_seconds()
    forecast = prophet_forecast(job)
    return forecast, _cpu_seconds() - cpu


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
    member_seconds: dict[str, float] = field(default_factory=dict)  # wall, all SKUs
    validation_day: date | None = None  # the validation run this run had to make first
    validation_seconds: float = 0.0


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
    if not await shop_held(conn, shop):
        # Its data waits for Shopify's erasure request; nothing of it is shown any more.
        await conn.rollback()
        return RunReport(shop, run_day or today, UNINSTALLED)
    if run_day is not None and run_day > today:
        # A run dated ahead would become the shop's latest: its forecast would start days
        # from now and the real nights until then would be weighted against days not sold yet.
        await conn.rollback()
        return RunReport(shop, run_day, f"failed: {run_day} is after the shop's today ({today})")
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
    last_day = run_day - timedelta(days=1)
    histories = await db.demand_history(conn, shop, last_day)
    ids = list(histories)
    in_stock = [
        in_stock_days(histories[v].units, histories[v].first_day, histories[v].stock_levels)
        for v in ids
    ]
    done = await db.done_in_run(conn, run_id)
    past = await db.past_forecasts(
        conn, shop, run_day - timedelta(days=ACCURACY_WITHIN_DAYS), run_day
    )
    ages = [VALIDATION_DAYS * k for k in range(1, VALIDATION_RUNS + 1)]
    validation, missing = await db.validation_runs(conn, shop, run_day, ages)
    classes = await abc_ranking(conn, shop, run_day)
    await conn.commit()  # end the reads; each batch below commits on its own
    report = RunReport(shop, run_day, "committed", resumed=len(done))
    units = [histories[v].units for v in ids]
    if missing:
        started = time.perf_counter()
        day = run_day - timedelta(days=min(missing))
        if await _make_validation_run(
            conn, pool, shop, ids, units, in_stock, run_day, day, country
        ):
            report.validation_day = day
            report.validation_seconds = time.perf_counter() - started
            validation, _ = await db.validation_runs(conn, shop, run_day, ages)
            await conn.commit()
    # Every SKU's history shapes the shop's members (its total, its closed days); the SKUs
    # the nightly run forecasts (models.combined.forecast_nightly) get one.
    started = time.perf_counter()
    fit = await _fit_members(pool, units, in_stock, last_day, HORIZON, country)
    # Wall seconds of the statsforecast members over the whole shop, the parts in parallel.
    wall = time.perf_counter() - started
    wall -= sum(s for m, s in fit.members.seconds.items() if m not in STATISTICAL)
    loop = asyncio.get_running_loop()
    cpu = sum(fit.members.seconds[m] for m in STATISTICAL)
    report.member_seconds = {
        m: (wall * fit.members.seconds[m] / cpu if m in STATISTICAL and cpu else seconds)
        for m, seconds in fit.members.seconds.items()
    }
    eligible = {i for i, v in enumerate(ids) if forecast_nightly(fit.sellable[i]) and v not in done}
    prophet_fits = dict(prophet_jobs(fit, country, HORIZON))
    by_prophet = {i: job for i, job in prophet_fits.items() if i in eligible}
    # The members that cannot forecast a SKU get no weight in its blend; Prophet's fits are
    # still to come. Whether a SKU could have one, not whether this run still fits it (a
    # resumed run has done some): the weights of every SKU set the shop's intervals.
    cannot = {
        i: {m for m, f in fit.blendable(i).items() if not np.all(np.isfinite(f))}
        - ({"prophet"} if i in prophet_fits else set())
        for i in range(len(ids))
    }
    blends = ShopBlend(
        fit.classes,
        [
            _validations(fit.learnt[i], fit.sellable[i], last_day, validation.get(v, []))
            for i, v in enumerate(ids)
        ],
        {i for i, y in enumerate(units) if not established(y)},
        cannot,
        lifecycle_trust(units),
    )
    task = (
        progress.add_task(shop, total=len(eligible) + len(done), completed=len(done))
        if progress
        else None
    )
    started = time.perf_counter()
    futures = {
        asyncio.ensure_future(_prophet_row(loop, pool, i, job)) for i, job in by_prophet.items()
    }
    # SKUs without a Prophet fit (too few sellable days for one) are ready now; the others
    # as their fit comes back.
    ready: list[tuple[int, float]] = [(i, 0.0) for i in sorted(eligible - set(by_prophet))]
    batch: list[dict[str, Any]] = []
    share = sum(fit.members.seconds.values()) / max(len(ids), 1)
    while ready or futures:
        if not ready:
            finished, futures = await asyncio.wait(futures, return_when=asyncio.FIRST_COMPLETED)
            for f in finished:
                i, forecast, cpu = f.result()
                fit.put_prophet(i, forecast)
                ready.append((i, cpu))
        while ready:
            i, cpu = ready.pop()
            variant_id = ids[i]
            row = _row(blends, fit, i)
            row |= {
                "variant_id": variant_id,
                "first_day": run_day,
                "mase": score_past_runs(
                    past.get(variant_id, []), histories[variant_id], fit.sellable[i], run_day
                ),
                "abc_class": classes.get(variant_id),
                "fit_seconds": share + cpu,
            }
            report.cpu_seconds += share + cpu
            report.fitted += 1
            batch.append(row)
            if len(batch) >= WRITE_EVERY:
                await _write(conn, run_id, shop, batch)
            if progress is not None and task is not None:
                progress.advance(task)
    report.member_seconds["prophet"] = time.perf_counter() - started
    await _write(conn, run_id, shop, batch)
    await db.commit_run(conn, run_id, shop, run_day)
    await conn.commit()
    return report


async def _prophet_row(
    loop: asyncio.AbstractEventLoop, pool: ProcessPoolExecutor, row: int, job: ProphetJob
) -> tuple[int, Forecast, float]:
    forecast, cpu = await loop.run_in_executor(pool, prophet_timed, job)
    return row, forecast, cpu


def pool_size(pool: ProcessPoolExecutor) -> int:
    return max(1, getattr(pool, "_max_workers", 1))


def _split(series: list[np.ndarray], parts: int) -> list[list[np.ndarray]]:
    """Consecutive parts of about equal size, one per process."""
    size = -(-len(series) // parts) or 1
    return [series[i : i + size] for i in range(0, len(series), size)] or [[]]


async def _fit_members(
    pool: ProcessPoolExecutor,
    units: list[np.ndarray],
    in_stock: list[np.ndarray],
    last_day: date,
    horizon: int,
    country: str | None,
) -> ShopFit:
    """Every member but Prophet for all the shop's SKUs, the statsforecast ones in one part
    per process."""
    fit = prepare_shop(units, in_stock, last_day, horizon, country)
    loop = asyncio.get_running_loop()
    parts = _split(fit.filled, pool_size(pool))
    add_statistical(
        fit,
        *await asyncio.gather(
            *(loop.run_in_executor(pool, fit_statistical, part, horizon) for part in parts)
        ),
    )
    return fit


async def _make_validation_run(
    conn: DictConnection,
    pool: ProcessPoolExecutor,
    shop: str,
    ids: list[int],
    units: list[np.ndarray],
    in_stock: list[np.ndarray],
    run_day: date,
    day: date,
    country: str | None,
) -> bool:
    """Fit the members on the history before ``day`` (each SKU's arrays end the day before
    ``run_day``) and store what they forecast, as the run of that day would have, for the SKUs
    it would have forecast."""
    removed = (run_day - day).days
    last_day = day - timedelta(days=1)
    cut = [u.size - removed for u in units]
    rows = [i for i, keep in enumerate(cut) if keep > 0]
    if not any(forecast_nightly(in_stock[i][: cut[i]]) for i in rows):
        return False  # too young a shop: that run would have forecast nothing
    kept_units = [units[i][: cut[i]] for i in rows]
    fit = await _fit_members(
        pool, kept_units, [in_stock[i][: cut[i]] for i in rows], last_day, VALIDATION_DAYS, country
    )
    loop = asyncio.get_running_loop()
    jobs = prophet_jobs(fit, country, VALIDATION_DAYS)
    forecasts = await asyncio.gather(
        *(loop.run_in_executor(pool, prophet_forecast, job) for _, job in jobs)
    )
    for (j, _), forecast in zip(jobs, forecasts, strict=True):
        fit.put_prophet(j, forecast)
    members = {
        ids[i]: _stored_members(fit, j)
        for j, i in enumerate(rows)
        if forecast_nightly(fit.sellable[j])
    }
    stored = bool(members) and await db.store_validation_run(conn, shop, day, members)
    await conn.commit()
    return stored


def _present_members(fit: ShopFit, i: int, season: bool = True) -> dict[str, np.ndarray]:
    """The forecasts of the members that could fit SKU ``i``."""
    return {m: f for m, f in fit.blendable(i, season).items() if np.all(np.isfinite(f))}


def _stored_members(fit: ShopFit, i: int) -> dict[str, list[float]]:
    """What the runs of later nights need of SKU ``i``: its members' first VALIDATION_DAYS."""
    return {
        m: [round(float(x), 3) for x in f[:VALIDATION_DAYS]]
        for m, f in _present_members(fit, i).items()
    }


def _row(blends: ShopBlend, fit: ShopFit, i: int) -> dict[str, Any]:
    """The run's row for SKU ``i``: its blend, and what the runs of later nights need."""
    as_fitted = _present_members(fit, i, season=False) if fit.has_season() else None
    forecast, weights, season = blends.forecast(
        i, _present_members(fit, i), fit.future_closed, as_fitted
    )
    return {
        "mean": [round(float(x), 3) for x in forecast.mean],
        "lower": [round(float(x), 3) for x in forecast.lower],
        "upper": [round(float(x), 3) for x in forecast.upper],
        "model": "combined",
        "members": _stored_members(fit, i),
        "weights": {m: round(w, 4) for m, w in weights.items()},
        "demand_class": fit.classes[i],
        "spread": blends.spreads[i],
        "season": None if season is None else [round(float(x), 3) for x in season],
    }


def _validations(
    units: np.ndarray, sellable: np.ndarray, last_day: date, runs: list[dict[str, Any]]
) -> list[Validation]:
    """The stored runs' member forecasts set against what sold since, day by day: ``units``
    as the members learn them, a one-off order taken as one of the SKU's big days
    (:mod:`models.one_offs`). Set against the order itself, every member erred by it, and the
    SKU's spread took a product selling one a day to a band of 0-33 and a safety stock of 225
    (an outside test); the accuracy the merchant is shown is scored on what sold."""
    first_day = last_day - timedelta(days=units.size - 1)
    out = []
    for run in runs:
        start = (run["first_day"] - first_day).days
        members = {m: np.asarray(f, dtype=float) for m, f in run["members"].items()}
        length = min((units.size - start), *(f.size for f in members.values()))
        if start < 0 or length <= 0:
            continue
        window = slice(start, start + length)
        out.append(
            Validation({m: f[:length] for m, f in members.items()}, units[window], sellable[window])
        )
    return out


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
                            if type(exc) is LookupError:  # db.shop_today: no such shop
                                status = NO_SUCH_SHOP
                            else:
                                log_failure(log, "the nightly refit of %s failed", shop)
                                status = f"failed: {exc!r}"
                            reports.append(RunReport(shop, run_day, status))
                            await conn.rollback()
            finally:
                # Stopped early (Ctrl-C, SIGTERM), queued fits are dropped rather than run:
                # what was committed is kept and the next run resumes from it.
                pool.shutdown(wait=True, cancel_futures=True)
    finally:
        await db_pool.close()
    return reports


def refit_and_report(
    shops: Sequence[str],
    processes: int = 0,
    run_day: date | None = None,
    progress: bool = True,
    scheduled: bool = False,
) -> int:
    """Refit ``shops`` (all installed ones when empty), print a line per shop and return the
    exit code: 0, 1 when a shop failed (the schedule retries later), 130 when stopped, or
    :data:`EXIT_RUNNING_ELSEWHERE`. ``scheduled``: the shops were picked by the schedule, so
    one uninstalled (or erased) since was not asked for by anyone and is skipped, not failed
    (a failure holds every shop's next scheduled run back for a quarter of an hour)."""
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
    if scheduled:
        reports = [
            replace(r, status="skipped: uninstalled since the schedule picked it")
            if r.status in (UNINSTALLED, NO_SUCH_SHOP)
            else r
            for r in reports
        ]
    for r in reports:
        if r.status != "committed":
            # Refused, failed or nothing done: the reason is the line (a refusal is not an
            # error to log with a traceback; an unexpected failure was logged with its own).
            print(f"{r.shop} {r.run_day or ''}: {r.status}")
            continue
        if not r.fitted and not r.resumed:
            # "committed; fitted 0" read as if forecasts had been made (an outside test).
            print(
                f"{r.shop} {r.run_day or ''}: nothing to forecast: no SKU had "
                f"{NIGHTLY_MIN_DAYS} sellable days before that day"
            )
            continue
        per_sku = r.cpu_seconds / r.fitted if r.fitted else 0.0
        members = ", ".join(f"{m} {s:.1f} s" for m, s in sorted(r.member_seconds.items()))
        print(
            f"{r.shop} {r.run_day or ''}: {r.status}; fitted {r.fitted}, "
            f"resumed past {r.resumed}, {per_sku:.3f} s CPU per SKU"
            + (f"; members (wall, whole shop): {members}" if members else "")
            + (
                f"; first made the validation run of {r.validation_day} "
                f"({r.validation_seconds:.1f} s)"
                if r.validation_day
                else ""
            )
        )
    if any(r.status.startswith("failed") for r in reports):
        return 1
    if any(r.status == "running elsewhere" for r in reports):
        return EXIT_RUNNING_ELSEWHERE
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m streams.refit [--shop S]… [--processes N] [--day D] [--no-progress]``."""
    parser = argparse.ArgumentParser(
        prog="python -m streams.refit",
        description="Refit the combined forecast for every SKU with 14+ sellable days.",
    )
    parser.add_argument("--shop", dest="shops", action="append", default=[], help="only these")
    parser.add_argument("--processes", type=int, default=0, help="fitting processes; 0: one/core")
    parser.add_argument("--day", type=date.fromisoformat, help="forecast from this local day")
    parser.add_argument("--no-progress", dest="progress", action="store_false")
    parser.add_argument(
        "--scheduled", action="store_true", help="shops picked by the schedule (the worker)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    return refit_and_report(args.shops, args.processes, args.day, args.progress, args.scheduled)


if __name__ == "__main__":
    # Run the importable module rather than this ``__main__`` copy of it: one copy of its
    # classes, and what the process pool pickles (``prophet_timed``, ``ProphetJob``) is found
    # by its real name whatever the start method.
    from streams.refit import main as refit_main

    sys.exit(refit_main())
