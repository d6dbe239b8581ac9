"""``stockpulse forecast evaluate``: rolling-origin backtests of every method on a CSV.

The CSV needs the columns ``sku,date,quantity`` (any order, more columns are ignored), one
shop's SKUs; a day without a row sold nothing. Nothing is tuned on the input: the combined
forecast runs exactly as the nightly run does, and the peers (statsforecast's AutoETS,
AutoTheta, CrostonSBA and TSB, Prophet alone, River alone, seasonal naive, a 7-day moving
average) as their packages run them, on the same folds.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
import os
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from models.accuracy import seasonal_naive_scale
from models.backtest import Score, long_enough, min_length
from models.combined import forecast_nightly
from models.ensemble import (
    VALIDATION_RUNS,
    ShopBlend,
    Validation,
)
from models.forecast import (
    SEASON,
    Forecast,
    Forecaster,
    MovingAverage,
    SeasonalNaive,
    Series,
    fill_censored,
)
from models.members import (
    FIT_DAYS,
    MemberForecasts,
    ProphetJob,
    ShopFit,
    established,
    fit_shop,
    fit_statistical,
    lifecycle_trust,
    prophet_can_fit,
    prophet_forecast,
)
from models.online import RiverForecaster

# One-series methods, fitted in this process: each costs a few milliseconds.
SIMPLE: dict[str, Callable[[], Forecaster]] = {
    "seasonal_naive": SeasonalNaive,
    "moving_average_7": MovingAverage,
    "river": RiverForecaster,
}
# The statsforecast peers, each as its own package runs it, by our JSON name and theirs.
PEERS = {"autoets": "ets", "autotheta": "theta", "croston_sba": "croston_sba", "tsb": "tsb"}
METHODS = (*SIMPLE, *PEERS, "prophet", "combined")
# Not a method: the expected demand a synthetic shop was drawn from, when it is known. It is
# the best any forecast of the mean can do, so it shows how much is left to gain and what a
# metric rewards (MASE, on skewed counts, rewards forecasts below the mean).
TRUTH = "truth"
# A SKU too young for every fold is scored as a launch in the folds it had sold this long
# before: two weeks give MASE its scale.
LAUNCH_MIN_DAYS = 2 * SEASON


class InputError(ValueError):
    pass


def _text(path: Path) -> str:
    """The file's text: UTF-8 (with or without a byte-order mark), else Windows-1252, as a
    spreadsheet saves a CSV with an accented SKU; gzip-compressed either way."""
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise InputError(f"{path}: not a readable gzip file ({exc})") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        return raw.decode("cp1252")
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a text file (neither UTF-8 nor Windows-1252)") from None


# Beyond any shop's sales of one SKU in a day; squaring it for RMSSE would overflow a float.
MAX_DAILY_UNITS = 1e12
EARLIEST_DAY = date(1990, 1, 1)  # before online shops: a mistyped or defaulted year


def read_demand_csv(path: Path, notes: list[str] | None = None) -> dict[str, Series]:
    """One daily series per SKU, from its first sale to the file's last day, zero-filled (an
    order export has no row for a day that sold nothing). A SKU that never sold has nothing
    to forecast or to scale errors by, and is left out. Rows of one SKU and day are added up,
    and a day whose net is below zero (returns) counts as none sold; ``notes`` gets a line
    saying so when that happened."""
    units: dict[str, dict[date, float]] = defaultdict(lambda: defaultdict(float))
    seen: set[tuple[str, date]] = set()
    repeated = no_sku = 0
    # One mistyped year would stretch every series to it. A synthetic shop may end in the
    # coming months (`forecast synthetic --end`), so only a date beyond a year is refused;
    # one stray 1970-01-01 (a spreadsheet's empty date) made every method's MASE 15 times
    # worse, an outside test found.
    latest = datetime.now(UTC).date() + timedelta(days=366)
    reader = csv.DictReader(io.StringIO(_text(path), newline=""))
    # Column names as a spreadsheet may spell them: "SKU", " Date".
    reader.fieldnames = [name.strip().lower() for name in reader.fieldnames or ()]
    missing = {"sku", "date", "quantity"} - set(reader.fieldnames)
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
    for line, row in enumerate(reader, start=2):
        absent = [name for name in ("sku", "date", "quantity") if row.get(name) is None]
        if absent:
            raise InputError(f"{path}, line {line}: no {', '.join(absent)} (a short row)")
        try:
            day = date.fromisoformat(row["date"].strip()[:10])
            quantity = float(row["quantity"])
        except ValueError as exc:
            raise InputError(f"{path}, line {line}: {exc}") from None
        # float() reads "nan" and "inf": one of them would poison every fit of the SKU.
        if not math.isfinite(quantity):
            raise InputError(f"{path}, line {line}: quantity {row['quantity']!r} is not a number")
        if abs(quantity) > MAX_DAILY_UNITS:
            raise InputError(
                f"{path}, line {line}: quantity {row['quantity']!r} is beyond any day's sales"
            )
        if day > latest:
            raise InputError(
                f"{path}, line {line}: {day} is more than a year ahead (a mistyped year?)"
            )
        if day < EARLIEST_DAY:
            raise InputError(
                f"{path}, line {line}: {day} is before {EARLIEST_DAY} (a mistyped year?)"
            )
        sku = row["sku"].strip()
        if not sku:
            # Exports leave the SKU blank on products without one: as one series, all of
            # them would be forecast as a single product.
            no_sku += 1
            continue
        repeated += (sku, day) in seen
        seen.add((sku, day))
        units[sku][day] += quantity
    if notes is not None and no_sku:
        notes.append(f"{no_sku:,} row(s) without a SKU: left out")
    series: dict[str, Series] = {}
    if not units:
        return series
    negative = sum(q < 0 for by_day in units.values() for q in by_day.values())
    if notes is not None and repeated:
        notes.append(f"{repeated:,} row(s) repeated a SKU and day already read: added up")
    if notes is not None and negative:
        notes.append(f"{negative:,} day(s) of a SKU netted below zero (returns): counted as 0")
    last = max(max(by_day) for by_day in units.values())
    never_sold = 0
    for sku, by_day in units.items():
        sold = [day for day, quantity in by_day.items() if quantity > 0]
        if not sold:
            never_sold += 1
            continue
        first = min(sold)
        length = (last - first).days + 1
        y = np.zeros(length)
        for day, quantity in by_day.items():
            if day >= first:
                y[(day - first).days] = max(quantity, 0.0)
        series[sku] = Series(y, None, first)
    if not series:
        raise InputError(f"{path}: no SKU sold anything, so there is nothing to forecast")
    if notes is not None and never_sold:
        notes.append(f"{never_sold:,} SKU(s) never sold: nothing to forecast, left out")
    return series


@dataclass
class _Origin:
    """Every series cut at one origin: what was known, and the shop's members fitted on it."""

    index: int
    rows: list[int]  # the series that had started by then
    units: list[np.ndarray]
    in_stock: list[np.ndarray]
    fit: ShopFit


@dataclass
class Breakdown:
    """The scores of :func:`evaluate` by fold and by series, to find where a method wins or
    loses: a shop's total can hide a kind of SKU, or a season, that it loses on."""

    folds: list[tuple[date, date, dict[str, Score]]] = field(default_factory=list)
    by_series: dict[int, dict[str, Score]] = field(default_factory=dict)

    def start_fold(self, first: date, last: date) -> None:
        self.folds.append((first, last, {}))

    def scores(self, row: int, name: str) -> tuple[Score, Score]:
        by_name = self.by_series.setdefault(row, {})
        return (
            self.folds[-1][2].setdefault(name, Score()),
            by_name.setdefault(name, Score()),
        )

    def as_json(self, names: Sequence[str]) -> dict[str, object]:
        """Folds by their days, series by ``names`` (the series' names by row)."""
        return {
            "folds": [
                {
                    "from": first.isoformat(),
                    "to": last.isoformat(),
                    "methods": {n: _accuracy(score) for n, score in by_name.items()},
                }
                for first, last, by_name in self.folds
            ],
            "by_series": {
                names[row]: {n: _accuracy(score) for n, score in by_name.items()}
                for row, by_name in sorted(self.by_series.items())
            },
        }


def _accuracy(score: Score) -> dict[str, float]:
    summary = score.summary()
    del summary["fit_seconds_per_series"]  # fits are timed per method, not per fold or series
    return summary


def evaluate(
    series: Sequence[Series],
    horizon: int,
    folds: int,
    processes: int | None = None,
    methods: Sequence[str] = METHODS,
    progress: bool = True,
    country: str | None = "US",
    truth: Sequence[Series | None] | None = None,
    launches: dict[str, dict[str, float | None]] | None = None,
    breakdown: Breakdown | None = None,
) -> dict[str, dict[str, float | None]]:
    """Every method's summary over the series long enough for ``folds`` origins; with
    ``launches``, that gets every method's summary over the series too young for them, each
    scored in the folds it had sold for LAUNCH_MIN_DAYS before (see :func:`_score_fold`);
    with ``breakdown``, that gets the same scores by fold and by series.

    The series are one shop's: they end on the same day, and the combined forecast and its
    shop member see all of them, as the nightly run does. Each method is fitted on what was
    known at an origin, forecasts ``horizon`` days and is scored on the days that could sell.
    The combined forecast's weights and interval come from the member forecasts made at the
    VALIDATION_RUNS origins before, scored on the days since, as the nightly run takes them
    from its stored runs. ``truth``, by series, adds the reference row TRUTH: the expected
    demand itself as the forecast (no interval, so no coverage)."""
    # One BLAS thread per process: the processes already use every core.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    jobs = processes or os.cpu_count() or 1
    days = max(s.y.size for s in series)
    last_day = _last_day(series, days)
    scored = [i for i, s in enumerate(series) if long_enough(s.y.size, horizon, folds)]
    origins = [days - horizon * (folds - k) for k in range(-VALIDATION_RUNS, folds)]
    scores = {name: Score() for name in methods}
    if truth is not None:
        scores[TRUTH] = Score()
    for score in scores.values():
        score.series = len(scored)
    young = {name: Score() for name in scores} if launches is not None else None
    fitted: dict[int, _Origin] = {}
    left_out: list[int] = []  # series by fold that not every method could be scored on
    with (
        ProcessPoolExecutor(jobs) as pool,
        Progress(disable=not progress, transient=True) as bar,
    ):
        task = bar.add_task("backtesting", total=len(origins))
        for k, origin in enumerate(origins):
            fitted[origin] = cut = _fit_origin(
                series, origin, days, last_day, horizon, country, pool, jobs, k >= VALIDATION_RUNS
            )
            for name, seconds in cut.fit.members.seconds.items():
                if "combined" in scores:
                    scores["combined"].fit_seconds += seconds
                peer = next((p for p, m in PEERS.items() if m == name), None)
                if peer in scores and k >= VALIDATION_RUNS and not _has_closed(cut):
                    scores[peer].fit_seconds += seconds
            if k >= VALIDATION_RUNS:
                if breakdown is not None:
                    first = last_day - timedelta(days=days - 1 - origin)
                    breakdown.start_fold(first, first + timedelta(days=horizon - 1))
                _score_fold(
                    series,
                    scored,
                    fitted,
                    origins,
                    k,
                    horizon,
                    scores,
                    pool,
                    jobs,
                    country,
                    left_out,
                    truth,
                    young,
                    breakdown,
                )
            bar.advance(task)
    results: dict[str, dict[str, float | None]] = {
        name: {**score.summary(), "series": score.series, "left_out": len(left_out)}
        for name, score in scores.items()
    }
    if TRUTH in results:
        results[TRUTH]["coverage"] = None
    if launches is not None and young is not None:
        # Fit seconds are the scored series' (a launch's fits are in theirs).
        launches |= {
            name: {**score.summary(), "series": None, "fit_seconds_per_series": None}
            for name, score in young.items()
        }
        if TRUTH in launches:
            launches[TRUTH]["coverage"] = None
    return results


def _last_day(series: Sequence[Series], days: int) -> date:
    starts = [s.start + timedelta(days=s.y.size - 1) for s in series if s.start is not None]
    return max(starts) if starts else date(2020, 1, 1) + timedelta(days=days - 1)


def _has_closed(cut: _Origin) -> bool:
    return any(
        not np.array_equal(ok, stock)
        for ok, stock in zip(cut.fit.sellable, cut.in_stock, strict=True)
    )


def _fit_origin(
    series: Sequence[Series],
    origin: int,
    days: int,
    last_day: date,
    horizon: int,
    country: str | None,
    pool: ProcessPoolExecutor,
    jobs: int,
    intervals: bool,
) -> _Origin:
    removed = days - origin
    rows, units, in_stock = [], [], []
    for i, s in enumerate(series):
        keep = s.y.size - removed
        if keep <= 0:
            continue
        rows.append(i)
        units.append(np.asarray(s.y[:keep], dtype=float))
        stock = np.ones(s.y.size, dtype=bool) if s.in_stock is None else np.asarray(s.in_stock)
        in_stock.append(stock[:keep])
    fit = fit_shop(
        units,
        in_stock,
        last_day - timedelta(days=removed),
        horizon,
        country,
        lambda f, jobs_: pool.map(f, jobs_, chunksize=4),
        jobs,
        intervals,
    )
    return _Origin(origin, rows, units, in_stock, fit)


def _score_fold(
    series: Sequence[Series],
    scored: list[int],
    fitted: dict[int, _Origin],
    origins: list[int],
    k: int,
    horizon: int,
    scores: dict[str, Score],
    pool: ProcessPoolExecutor,
    jobs: int,
    country: str | None,
    left_out: list[int],
    truth: Sequence[Series | None] | None = None,
    young: dict[str, Score] | None = None,
    breakdown: Breakdown | None = None,
) -> None:
    """Score fold ``k``: the ``scored`` series into ``scores``; with ``young``, also the
    series too short for every fold that had sold for LAUNCH_MIN_DAYS by this origin (launches:
    the days a merchant orders a new product's stock on), on which every method but Prophet
    alone must forecast (it needs more days than a launch has; its row counts what it could)."""
    origin = origins[k]
    cut = fitted[origin]
    position = {row: j for j, row in enumerate(cut.rows)}
    long_ones = set(scored)
    launched = (
        [
            row
            for row, units in zip(cut.rows, cut.units, strict=True)
            if units.size >= LAUNCH_MIN_DAYS and row not in long_ones
        ]
        if young is not None
        else []
    )
    scored = [*scored, *launched]
    forecasts: dict[str, dict[int, Forecast]] = {name: {} for name in scores}
    if "combined" in scores:
        forecasts["combined"] = _combined(series, fitted, origins, k, horizon)
    peers = [p for p in PEERS if p in scores]
    if peers:
        forecasts |= _peer_forecasts(cut, peers, scored, position, horizon, jobs, scores)
    if "prophet" in scores:
        forecasts["prophet"] = _prophet_alone(cut, scored, position, horizon, pool, country, scores)
    if truth is not None:
        forecasts[TRUTH] = _truth(series, truth, scored, cut, position, horizon)
    for name, make in SIMPLE.items():
        if name not in scores:
            continue
        started = time.perf_counter()
        for row in scored:
            j = position[row]
            model = make()
            model.fit(cut.units[j], cut.in_stock[j], series[row].start)
            forecasts[name][row] = model.forecast(horizon)
        scores[name].fit_seconds += time.perf_counter() - started
    is_launch = set(launched)
    for row in scored:
        s = series[row]
        j = position[row]
        start = cut.units[j].size
        actual = np.asarray(s.y[start : start + horizon], dtype=float)
        stock = np.ones(s.y.size, dtype=bool) if s.in_stock is None else np.asarray(s.in_stock)
        ok = stock[start : start + horizon]
        if not ok.any():
            continue
        made = {
            name: f
            for name, by_row in forecasts.items()
            if (f := by_row.get(row)) is not None and np.all(np.isfinite(f.mean))
        }
        if row in is_launch:
            if (
                young is not None
                and _has_scale(cut.units[j])
                and all(name in made for name in forecasts if name not in (TRUTH, "prophet"))
            ):
                for name, f in made.items():
                    young[name].add(actual[ok], f.mean[ok], f.lower[ok], f.upper[ok], cut.units[j])
            continue
        # Every method on the same series and folds, or the comparison is of different tests:
        # one a method could not forecast (Prophet without enough days or sales), or one
        # without a MASE scale (its history repeats every week exactly), is left out for all.
        if any(name not in made for name in forecasts if name != TRUTH) or not _has_scale(
            cut.units[j]
        ):
            left_out.append(row)
            continue
        for name, f in made.items():
            scores[name].add(actual[ok], f.mean[ok], f.lower[ok], f.upper[ok], cut.units[j])
            if breakdown is not None:
                for score in breakdown.scores(row, name):
                    score.add(actual[ok], f.mean[ok], f.lower[ok], f.upper[ok], cut.units[j])


def _has_scale(history: np.ndarray) -> bool:
    return history.size > SEASON and seasonal_naive_scale(history.tolist(), SEASON) > 0


def _truth(
    series: Sequence[Series],
    truth: Sequence[Series | None],
    scored: list[int],
    cut: _Origin,
    position: dict[int, int],
    horizon: int,
) -> dict[int, Forecast]:
    """The expected demand of each scored series over the fold's days, aligned by date."""
    out = {}
    for row in scored:
        expected = truth[row]
        s = series[row]
        if expected is None or expected.start is None or s.start is None:
            continue
        first = cut.units[position[row]].size + (s.start - expected.start).days
        mean = np.asarray(expected.y[max(first, 0) : first + horizon], dtype=float)
        if first >= 0 and mean.size == horizon:
            out[row] = Forecast(mean, mean, mean)
    return out


def _combined(
    series: Sequence[Series],
    fitted: dict[int, _Origin],
    origins: list[int],
    k: int,
    horizon: int,
) -> dict[int, Forecast]:
    """The combined forecast as the nightly run would publish it at ``origins[k]``."""
    cut = fitted[origins[k]]
    validations: dict[int, list[Validation]] = {}
    for j, row in enumerate(cut.rows):
        past = []
        for back in range(1, VALIDATION_RUNS + 1):
            earlier = fitted[origins[k - back]]
            then = {r: i for i, r in enumerate(earlier.rows)}.get(row)
            # The nightly run stores member forecasts only for the SKUs it forecast.
            if then is None or not forecast_nightly(earlier.fit.sellable[then]):
                continue
            start = earlier.units[then].size
            end = min(start + horizon, cut.units[j].size)
            window = slice(start, end)
            past.append(
                Validation(
                    {m: f[: end - start] for m, f in earlier.fit.blendable(then).items()},
                    cut.fit.learnt[j][window],  # as the nightly run sets them against
                    cut.fit.sellable[j][window],
                )
            )
        validations[row] = past
    blends = ShopBlend(
        cut.fit.classes,
        [validations[row] for row in cut.rows],
        {j for j, units in enumerate(cut.units) if not established(units)},
        {
            j: {m for m, f in cut.fit.blendable(j).items() if not np.all(np.isfinite(f))}
            for j in range(len(cut.rows))
        },
        lifecycle_trust(cut.units),
    )
    out = {}
    for j, row in enumerate(cut.rows):
        if not forecast_nightly(cut.fit.sellable[j]):
            continue  # the nightly run does not forecast it yet
        try:
            as_fitted = cut.fit.blendable(j, season=False) if cut.fit.has_season() else None
            out[row] = blends.forecast(
                j, cut.fit.blendable(j), cut.fit.future_closed, as_fitted
            ).forecast
        except ValueError:
            continue
    return out


def _peer_forecasts(
    cut: _Origin,
    peers: list[str],
    scored: list[int],
    position: dict[int, int],
    horizon: int,
    jobs: int,
    scores: dict[str, Score],
) -> dict[str, dict[int, Forecast]]:
    """The statsforecast peers on the series as they are (out-of-stock days filled, closed days
    not known): the members' own fits when no closed day made their input differ."""
    members: MemberForecasts = cut.fit.members
    if _has_closed(cut):
        rows = [position[r] for r in scored]
        inputs = [fill_censored(cut.units[j], cut.in_stock[j])[-FIT_DAYS:] for j in rows]
        members = fit_statistical(inputs, horizon, [PEERS[p] for p in peers], True, jobs)
        for p in peers:
            scores[p].fit_seconds += members.seconds[PEERS[p]]
        index = {row: i for i, row in enumerate(scored)}
    else:
        index = position
    return {
        p: {
            row: Forecast(
                members.mean[PEERS[p]][index[row]],
                members.lower[PEERS[p]][index[row]],
                members.upper[PEERS[p]][index[row]],
            )
            for row in scored
        }
        for p in peers
    }


def _prophet_alone(
    cut: _Origin,
    scored: list[int],
    position: dict[int, int],
    horizon: int,
    pool: ProcessPoolExecutor,
    country: str | None,
    scores: dict[str, Score],
) -> dict[int, Forecast]:
    """Prophet on its own, told which days were out of stock but not which were closed."""
    started = time.perf_counter()
    jobs = []
    for row in scored:
        j = position[row]
        units, stock = cut.units[j], cut.in_stock[j]
        if not prophet_can_fit(units, stock):
            continue
        first = cut.fit.last_day - timedelta(days=units.size - 1)
        jobs.append((row, ProphetJob(units, stock, first, country, horizon)))
    results = pool.map(prophet_forecast, [job for _, job in jobs], chunksize=4)
    out = {row: f for (row, _), f in zip(jobs, results, strict=True)}
    scores["prophet"].fit_seconds += time.perf_counter() - started
    return out


def print_table(
    results: dict[str, dict[str, float | None]],
    console: Console,
    title: str = "Rolling-origin backtest",
) -> None:
    table = Table(title=title)
    table.add_column("method", no_wrap=True)
    for column in (
        "MASE",
        "RMSSE",
        "WAPE",
        "bias",
        "80% coverage",
        "fit s/series (all folds)",
        "series",
        "series × folds",
    ):
        table.add_column(column, justify="right")
    for name, r in results.items():
        table.add_row(
            name,
            *(
                _cell(r[key], spec)
                for key, spec in (
                    ("mase", ".3f"),
                    ("rmsse", ".3f"),
                    ("wape", ".3f"),
                    ("bias", "+.3f"),
                    ("coverage", ".3f"),
                    ("fit_seconds_per_series", ".3f"),
                    ("series", ".0f"),
                    ("scored", ".0f"),
                )
            ),
        )
    console.print(table)


def _cell(value: float | None, spec: str) -> str:
    """A figure as the table shows it; a dash where there is none (a bias over days that sold
    nothing, coverage of a method without intervals), as the JSON has null."""
    return "–" if value is None or not math.isfinite(value) else format(value, spec)


def write_json(
    results: dict[str, dict[str, float | None]],
    path: Path,
    meta: dict[str, object],
    launches: dict[str, dict[str, float | None]] | None = None,
    breakdown: dict[str, object] | None = None,
) -> None:
    # JSON has no NaN (a bias over days that sold nothing has no value): null instead.
    def finite(value: object) -> object:
        if isinstance(value, dict):
            return {k: finite(v) for k, v in value.items()}
        if isinstance(value, list):
            return [finite(v) for v in value]
        return None if isinstance(value, float) and not math.isfinite(value) else value

    document: dict[str, object] = {"meta": meta, "methods": results}
    if launches:
        document["launches"] = launches
    if breakdown:
        document |= breakdown
    document = {k: finite(v) for k, v in document.items()}
    path.write_text(json.dumps(document, indent=2, allow_nan=False) + "\n")


def check_backtestable(series: dict[str, Series], horizon: int, folds: int) -> None:
    """Raises InputError when no series is long enough to score: a table of NaNs says
    nothing, and JSON has no NaN."""
    if not series:
        raise InputError("the CSV has no sales rows")
    if skipped(series, horizon, folds) == len(series):
        needed = min_length(horizon, folds)
        longest = max(s.y.size for s in series.values())
        raise InputError(
            f"no series is long enough for {folds} folds of {horizon} days: that needs "
            f"{needed} days from a SKU's first sale to the file's last day, the longest has "
            f"{longest}; try fewer --folds or a shorter --horizon"
        )


def skipped(series: dict[str, Series], horizon: int, folds: int) -> int:
    """How many series are too short for the backtest (they are left out, not failed)."""
    return sum(1 for s in series.values() if not long_enough(s.y.size, horizon, folds))
