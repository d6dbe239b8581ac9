"""``stockpulse forecast evaluate``: rolling-origin backtests of every method on a CSV.

The CSV needs the columns ``sku,date,quantity`` (any order, more columns are ignored); days
missing between a SKU's first and last date sold nothing. Nothing is tuned on the input: each
method runs exactly as it runs in production.
"""

from __future__ import annotations

import csv
import json
import os
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from datetime import date
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from models.backtest import Score, backtest, long_enough
from models.combined import CombinedForecaster
from models.forecast import Forecaster, MovingAverage, SeasonalNaive, Series
from models.online import RiverForecaster
from models.prophet_forecaster import ProphetForecaster

METHODS: dict[str, Callable[[], Forecaster]] = {
    "seasonal_naive": SeasonalNaive,
    "moving_average_7": MovingAverage,
    "prophet": ProphetForecaster,
    "river": RiverForecaster,
    "combined": CombinedForecaster,
}
CHUNK = 10  # series per task: small enough to spread over the processes evenly


class InputError(ValueError):
    pass


def read_demand_csv(path: Path) -> dict[str, Series]:
    """One daily series per SKU, zero-filled between its first and last day."""
    units: dict[str, dict[date, float]] = defaultdict(lambda: defaultdict(float))
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        missing = {"sku", "date", "quantity"} - set(reader.fieldnames or ())
        if missing:
            raise InputError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
        for line, row in enumerate(reader, start=2):
            try:
                day = date.fromisoformat(row["date"].strip()[:10])
                units[row["sku"].strip()][day] += float(row["quantity"])
            except (ValueError, AttributeError) as exc:
                raise InputError(f"{path}, line {line}: {exc}") from None
    series: dict[str, Series] = {}
    for sku, by_day in units.items():
        first, last = min(by_day), max(by_day)
        length = (last - first).days + 1
        y = np.zeros(length)
        for day, quantity in by_day.items():
            y[(day - first).days] = quantity
        series[sku] = Series(y, None, first)
    return series


def _score(method: str, series: Sequence[Series], horizon: int, folds: int) -> Score:
    return backtest(series, METHODS[method], horizon, folds)


def evaluate(
    series: Sequence[Series],
    horizon: int,
    folds: int,
    processes: int | None = None,
    methods: Sequence[str] = tuple(METHODS),
    progress: bool = True,
) -> dict[str, dict[str, float]]:
    """Every method's summary over ``series``, computed in parallel processes."""
    # One BLAS thread per process: the processes already use every core.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    chunks = [series[i : i + CHUNK] for i in range(0, len(series), CHUNK)]
    scores = {name: Score() for name in methods}
    with (
        ProcessPoolExecutor(processes or os.cpu_count() or 1) as pool,
        Progress(disable=not progress, transient=True) as bar,
    ):
        task = bar.add_task("backtesting", total=len(chunks) * len(methods))
        futures = {
            pool.submit(_score, name, chunk, horizon, folds): name
            for name in methods
            for chunk in chunks
        }
        for future in as_completed(futures):
            name = futures[future]
            scores[name] = scores[name].merge(future.result())
            bar.advance(task)
    return {name: score.summary() | {"series": score.series} for name, score in scores.items()}


def print_table(results: dict[str, dict[str, float]], console: Console) -> None:
    table = Table(title="Rolling-origin backtest")
    table.add_column("method", no_wrap=True)
    for column in ("MASE", "WAPE", "bias", "80% coverage", "fit s/series (all folds)", "series"):
        table.add_column(column, justify="right")
    for name, r in results.items():
        table.add_row(
            name,
            f"{r['mase']:.3f}",
            f"{r['wape']:.3f}",
            f"{r['bias']:+.3f}",
            f"{r['coverage']:.3f}",
            f"{r['fit_seconds_per_series']:.3f}",
            str(int(r["series"])),
        )
    console.print(table)


def write_json(results: dict[str, dict[str, float]], path: Path, meta: dict[str, object]) -> None:
    path.write_text(json.dumps({"meta": meta, "methods": results}, indent=2) + "\n")


def skipped(series: dict[str, Series], horizon: int, folds: int) -> int:
    """How many series are too short for the backtest (they are left out, not failed)."""
    return sum(1 for s in series.values() if not long_enough(s.y.size, horizon, folds))
