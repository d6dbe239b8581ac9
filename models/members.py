"""The models blended into the combined forecast, each fitted on all of a shop's SKUs at once.

- ``ets`` and ``theta``: statsforecast's AutoETS and AutoTheta, weekly season;
- ``croston_sba`` and ``tsb``: statsforecast's intermittent-demand methods;
- ``prophet``: one Prophet per SKU (yearly curve, holidays), fitted by the caller's processes;
- ``river``: the online model (:mod:`models.online`) learnt over the SKU's history, as the
  stream keeps it: a recent level and weekday factors;
- ``shop``: top-down. AutoETS forecasts the shop's total, which is far less noisy than any one
  SKU, and each SKU gets its recent share of it. It carries the shop's weekly rhythm, season
  and trend to SKUs whose own history is short or sparse.

Days a SKU could not sell (out of stock, or the shop closed) are not demand. Prophet takes them
as missing; the statsforecast models need a value, so they get the mean of the sellable days
before them. Only the last FIT_DAYS are fitted: a weekly model learns nothing more from older
days, and the fits cost time in proportion.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import numpy as np

from models.forecast import SEASON, Forecast, fill_censored
from models.one_offs import without_one_offs
from models.season import season_factor
from models.shop_calendar import closed_days, future_closed

STATISTICAL = ("ets", "theta", "croston_sba", "tsb")
YEARLY_MEMBERS = ("prophet",)
INTERMITTENT_METHODS = ("croston_sba", "tsb")
FIT_DAYS = 365
# The most history Prophet learns from: three years hold three turns of every season, and its
# fits cost time in proportion (one signed order dated 2004 for 2,000 new SKUs made a nightly
# run 3.5 minutes long, an outside test found; a shop with twenty years of orders would pay
# that every night). River learns as the stream's models do (models.online.LEARN_DAYS).
PROPHET_LEARN_DAYS = 3 * 365
SHARE_DAYS = 56  # a SKU's share of the shop: eight weeks, so every weekday counts eight times
# A SKU that sold on before and then sold nothing for this many of its usual gaps between sales
# (and at least STOPPED_MIN_DAYS days it could sell) has stopped: with gaps drawn at random, a
# quiet spell five times the usual one comes once in a few hundred.
STOPPED_GAPS = 5
STOPPED_MIN_DAYS = 21
TSB_ALPHA = 0.1  # TSB's smoothing of demand size and of demand probability: the usual 0.1
MIN_FIT_DAYS = 2 * SEASON
PROPHET_AFTER_DAYS = 30
# ... and days with a sale: on a history of one or two sales Prophet's optimiser fails over
# to its slow fallback, 8-12 s a fit against 0.05 s (docs/forecasting-experiments.md), and a
# trend of two points means nothing. Sparse sellers joined its blend, so a shop of dead SKUs
# would pay that.
PROPHET_AFTER_SALES = 8
LEVEL_DAYS = 28  # a sparse seller's Prophet forecast is held to its best run of this many days
LAUNCH_LEVEL_DAYS = 2 * SEASON  # a launch's level, and what its ratio is set against
LAUNCH_SHRINK = 5.0  # earlier launches: with 5, a ratio is trusted half way
LAUNCH_RATIO = (0.25, 2.0)
# How launches sold on is measured over the next four weeks, whatever the horizon: over the
# nightly run's 90 days, a shop's earlier launches had to be 90 days older than a new one to
# count, so the member was its level alone (an outside test).
LAUNCH_AHEAD_DAYS = 28


@dataclass(frozen=True)
class MemberForecasts:
    """Each member's forecast for each SKU (rows in the order the SKUs were given; NaN where a
    member could not fit the SKU), optional 80 % bounds, and each member's fit seconds."""

    mean: dict[str, np.ndarray]
    lower: dict[str, np.ndarray]
    upper: dict[str, np.ndarray]
    seconds: dict[str, float]


def fillable(y: np.ndarray, sellable: np.ndarray) -> np.ndarray:
    """The last FIT_DAYS of ``y``, days that could not sell replaced by the mean before them.

    >>> fillable(np.array([2., 0., 4.]), np.array([True, False, True])).tolist()
    [2.0, 2.0, 4.0]
    """
    return fill_censored(y[-FIT_DAYS:], sellable[-FIT_DAYS:])


def _model(name: str, intervals: int) -> object:
    from statsforecast.models import TSB, AutoETS, AutoTheta, CrostonSBA
    from statsforecast.utils import ConformalIntervals

    if name == "ets":
        return AutoETS(season_length=SEASON, alias=name)
    if name == "theta":
        return AutoTheta(season_length=SEASON, alias=name)
    # The intermittent methods have no intervals of their own: conformal ones, from
    # refits on the last windows, give them comparable bounds when asked for.
    conformal = ConformalIntervals(h=intervals, n_windows=2) if intervals else None
    if name == "croston_sba":
        return CrostonSBA(alias=name, prediction_intervals=conformal)
    return TSB(TSB_ALPHA, TSB_ALPHA, alias=name, prediction_intervals=conformal)


def fit_statistical(
    series: Sequence[np.ndarray],
    horizon: int,
    members: Sequence[str] = STATISTICAL,
    intervals: bool = False,
    n_jobs: int = 1,
) -> MemberForecasts:
    """Fit each statsforecast member on every filled series in one call (``n_jobs`` processes)
    and forecast ``horizon`` days; with ``intervals``, 80 % bounds too."""
    import pandas as pd

    n = len(series)
    usable = [i for i, y in enumerate(series) if y.size >= MIN_FIT_DAYS]
    out = MemberForecasts({}, {}, {}, {})
    if usable:
        frame = pd.DataFrame(
            {
                "unique_id": np.repeat(usable, [series[i].size for i in usable]),
                "ds": np.concatenate([np.arange(series[i].size) for i in usable]),
                "y": np.concatenate([series[i] for i in usable]),
            }
        )
    for name in members:
        mean, lower, upper = (np.full((n, horizon), np.nan) for _ in range(3))
        started = time.perf_counter()
        if usable:
            if intervals and name in INTERMITTENT_METHODS:
                # Their conformal intervals need three horizons of history. A shorter series
                # still gets its forecast, as in the nightly run, only no interval: leaving it
                # out had `forecast evaluate` blend young SKUs without them, and score these
                # peers on the older SKUs only.
                _forecast_into(mean, None, None, frame, usable, _model(name, 0), name, horizon)
                long = [i for i in usable if series[i].size > 3 * horizon]
                if long:
                    part = frame[frame["unique_id"].isin(long)]
                    model = _model(name, horizon)
                    same_mean = np.empty_like(mean)  # only the bounds are taken from this fit
                    _forecast_into(same_mean, lower, upper, part, long, model, name, horizon)
            else:
                # Croston and TSB take milliseconds a shop: starting worker processes for
                # them took a second a call.
                jobs = 1 if name in INTERMITTENT_METHODS else n_jobs
                model = _model(name, horizon if intervals else 0)
                low, high = (lower, upper) if intervals else (None, None)
                _forecast_into(mean, low, high, frame, usable, model, name, horizon, jobs)
        out.seconds[name] = time.perf_counter() - started
        out.mean[name] = np.maximum(mean, 0)
        out.lower[name] = np.maximum(lower, 0)
        out.upper[name] = np.maximum(upper, 0)
    return out


def _forecast_into(
    mean: np.ndarray,
    lower: np.ndarray | None,
    upper: np.ndarray | None,
    frame: Any,
    ids: Sequence[int],
    model: object,
    name: str,
    horizon: int,
    jobs: int = 1,
) -> None:
    """Fit ``model`` on the series ``ids`` of ``frame`` and write its forecasts (and 80 %
    bounds, when given arrays for them) into their rows."""
    from statsforecast import StatsForecast

    with _quiet_numerics():
        result = StatsForecast(models=[model], freq=1, n_jobs=jobs).forecast(
            df=frame, h=horizon, level=[80] if lower is not None else None
        )
    rows = result["unique_id"].to_numpy().reshape(len(ids), horizon)[:, 0]
    mean[rows] = result[name].to_numpy().reshape(len(ids), horizon)
    if lower is not None and upper is not None:
        lower[rows] = result[f"{name}-lo-80"].to_numpy().reshape(-1, horizon)
        upper[rows] = result[f"{name}-hi-80"].to_numpy().reshape(-1, horizon)


def shop_total(units: Sequence[np.ndarray], days: int) -> np.ndarray:
    """The shop's units by day over its last ``days`` days; every SKU's array ends on the last.

    >>> shop_total([np.array([1., 2.]), np.array([5.])], 3).tolist()
    [0.0, 1.0, 7.0]
    """
    total = np.zeros(days)
    for y in units:
        total[days - y.size :] += y
    return total


def _total_forecast(total: np.ndarray, open_days: np.ndarray, horizon: int) -> np.ndarray:
    """AutoETS on a daily shop total, closed days filled; zeros where it cannot fit. Its trend
    is damped: carried on undamped, a year's total came out 97 % high and took the blend with
    it (docs/forecasting-experiments.md)."""
    from statsforecast.models import AutoETS

    filled = fill_censored(total[-FIT_DAYS:], open_days[-FIT_DAYS:])
    if filled.size < MIN_FIT_DAYS or not filled.any():
        return np.zeros(horizon)
    model = AutoETS(season_length=SEASON, damped=True)
    with _quiet_numerics():
        return np.maximum(model.fit(filled.astype(float)).predict(horizon)["mean"], 0)


@contextmanager
def _quiet_numerics() -> Iterator[None]:
    """statsforecast and the statsmodels tests it runs divide by zero on a series without any
    variation (a SKU that sold once, a closed shop's weeks) and say so on stderr, once per
    series and night; the fit handles it, and the nightly log and `forecast evaluate` were
    full of it (an outside test)."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", category=RuntimeWarning, module=r"(statsforecast|statsmodels)\."
        )
        yield


def _first_sale(y: np.ndarray) -> int | None:
    sold = np.flatnonzero(np.asarray(y) > 0)
    return int(sold[0]) if sold.size else None


def established(y: np.ndarray) -> bool:
    """Whether the SKU sold before its share's window began.

    >>> established(np.r_[np.zeros(10), np.ones(SHARE_DAYS)]), established(np.ones(SHARE_DAYS + 1))
    (False, True)
    """
    first = _first_sale(y)
    return first is not None and y.size - first > SHARE_DAYS


def stopped(y: np.ndarray, sellable: np.ndarray) -> bool:
    """Whether an established SKU has stopped selling: no sale on its last STOPPED_GAPS usual
    gaps between sales (its last year's sellable days over its days with a sale), and on at
    least STOPPED_MIN_DAYS sellable days.

    >>> daily = np.r_[np.ones(100), np.zeros(21)]
    >>> stopped(daily, np.ones(121, bool)), stopped(daily[:-1], np.ones(120, bool))
    (True, False)
    >>> monthly = np.zeros(200); monthly[::30] = 5  # 20 quiet days are its usual gap
    >>> stopped(monthly[:-9], np.ones(191, bool))
    False
    """
    days = np.asarray(y, dtype=float)[np.asarray(sellable, dtype=bool)]
    sold = np.flatnonzero(days > 0)
    if sold.size < 2 or not established(y):
        return False
    quiet = days.size - 1 - int(sold[-1])
    before = days[: sold[-1] + 1][-365:]
    gap = before.size / max(int(np.count_nonzero(before)), 1)
    return quiet >= max(STOPPED_MIN_DAYS, STOPPED_GAPS * gap)


def shop_member(
    units: Sequence[np.ndarray],
    sellable: Sequence[np.ndarray],
    open_days: np.ndarray,
    horizon: int,
    forecast_whole: np.ndarray | None = None,
) -> np.ndarray:
    """Top-down: AutoETS on the shop's daily total, times each SKU's share of the total over
    its last SHARE_DAYS sellable days. Every SKU's arrays end on the shop calendar's last day;
    ``open_days`` covers the whole calendar.

    The share and the forecast must be of the same SKUs: AutoETS follows the total's last
    weeks, the share averages eight of them. So a SKU that sold before those eight weeks
    (established) takes its share of, and the forecast of, the total of established SKUs
    only. Otherwise a collection launched a month ago lifts every older SKU's forecast by the
    launch: this member's bias was +57 % on a black-box fashion shop, and up to +140 % on its
    year-round basics in the weeks after a launch. A newer SKU takes its share of the whole
    shop's total. ``forecast_whole``: that total's forecast, when the caller has it already."""
    days = open_days.size
    # A SKU that stopped selling is out of the total its share is taken of, from its first day:
    # its fall is its own, not the shop's. Left in, one of a three-SKU shop's products going
    # quiet took the others' forecasts down with it, and its own stayed at its old share (an
    # outside test: 1 a day three weeks after its last sale).
    gone = [stopped(y, ok) for y, ok in zip(units, sellable, strict=True)]
    old = [established(y) and not g for y, g in zip(units, gone, strict=True)]
    whole = shop_total([y for y, g in zip(units, gone, strict=True) if not g], days)
    of_old = shop_total([y for y, e in zip(units, old, strict=True) if e], days)
    if forecast_whole is None:
        forecast_whole = _total_forecast(whole, open_days, horizon)
    forecast_old = _total_forecast(of_old, open_days, horizon) if any(old) else forecast_whole
    out = np.zeros((len(units), horizon))
    for i, (y, ok, is_old) in enumerate(zip(units, sellable, old, strict=True)):
        if gone[i]:
            continue  # nothing: its share of late is none
        total, forecast = (of_old, forecast_old) if is_old else (whole, forecast_whole)
        recent = np.flatnonzero(ok)[-SHARE_DAYS:]
        shop_then = total[days - y.size :][recent].sum()
        if recent.size and shop_then > 0:
            out[i] = y[recent].sum() / shop_then * forecast
    return out


def lifecycle_member(
    units: Sequence[np.ndarray], sellable: Sequence[np.ndarray], horizon: int
) -> np.ndarray:
    """For a SKU launched lately (not :func:`established`) that has sold for LAUNCH_LEVEL_DAYS
    or more: its level over its last LAUNCH_LEVEL_DAYS sellable days, times how the shop's
    earlier launches sold on at the same age, the sum of what they sold over the next
    LAUNCH_AHEAD_DAYS against the LAUNCH_LEVEL_DAYS before (per day), for every day of
    ``horizon``. Every other SKU: NaN.

    A new product's first weeks do not say how it will sell next month: a fashion
    collection sells most in its first weeks and fades, a basic builds up. Every other
    member carries a launch's first weeks forward (all of them over-forecast an outside
    tester's fashion launches by 19-108 %); the shop's own earlier launches say which way its
    products go. The ratio is shrunk towards 1 by :func:`lifecycle_trust` and held to
    LAUNCH_RATIO. An earlier launch is a SKU whose first sale came at least
    LAUNCH_LEVEL_DAYS after the history's first day (one selling from the first day may be
    older than the history) and which has lived to the same age plus LAUNCH_AHEAD_DAYS.
    Arrays end on the same day; the longest covers the whole history.

    >>> old = np.r_[np.zeros(30), np.full(14, 10.0), np.full(46, 5.0)]  # 60 days on sale
    >>> new = np.r_[np.zeros(76), np.full(14, 8.0)]
    >>> f = lifecycle_member([old, new], [np.ones(90, bool), np.ones(90, bool)], 90)
    >>> bool(np.isnan(f[0]).all()), f[1, :3].round(2).tolist()  # 8 a day x (1 + 1/6 x -0.5)
    (True, [7.33, 7.33, 7.33])
    """
    out = np.full((len(units), horizon), np.nan)
    earlier = _EarlierLaunches(units)
    for i, (y, ok) in enumerate(zip(units, sellable, strict=True)):
        age = earlier.age_of(i)
        if age is None:
            continue
        recent = np.asarray(y[-LAUNCH_LEVEL_DAYS:], dtype=float)[ok[-LAUNCH_LEVEL_DAYS:]]
        if recent.size:
            out[i] = recent.mean() * earlier.ratio(age)
    return out


def lifecycle_trust(units: Sequence[np.ndarray]) -> dict[int, float]:
    """How far each launch the lifecycle member forecasts may go by it: n / (n +
    LAUNCH_SHRINK) over the n earlier launches that lived to its age plus LAUNCH_AHEAD_DAYS,
    the shrinkage of its ratio too. Zero for a shop's first launches.

    >>> old = np.r_[np.zeros(30), np.full(60, 5.0)]
    >>> lifecycle_trust([old, np.r_[np.zeros(76), np.full(14, 8.0)], np.ones(90)])
    {1: 0.1667}
    """
    earlier = _EarlierLaunches(units)
    return {
        i: round(earlier.trust(age), 4)
        for i in range(len(units))
        if (age := earlier.age_of(i)) is not None
    }


class _EarlierLaunches:
    """A shop's launches by their own age, from their first sale on, and which SKUs are
    launches the lifecycle member forecasts (their age; None for the others)."""

    def __init__(self, units: Sequence[np.ndarray]) -> None:
        days = max((y.size for y in units), default=0)
        self.units = units
        self.firsts = [_first_sale(y) for y in units]
        self.by_age = [
            np.asarray(y[f:], dtype=float)
            for y, f in zip(units, self.firsts, strict=True)
            if f is not None and days - y.size + f >= LAUNCH_LEVEL_DAYS
        ]
        self.ratios: dict[int, float] = {}

    def age_of(self, i: int) -> int | None:
        y, first = self.units[i], self.firsts[i]
        if first is None or y.size - first < LAUNCH_LEVEL_DAYS or established(y):
            return None
        return y.size - first

    def _lived(self, age: int) -> list[np.ndarray]:
        # A SKU launched at the same age as the one asking cannot have lived longer, so it is
        # never among them.
        return [y for y in self.by_age if y.size >= age + LAUNCH_AHEAD_DAYS]

    def trust(self, age: int) -> float:
        n = len(self._lived(age))
        return n / (n + LAUNCH_SHRINK)

    def ratio(self, age: int) -> float:
        """How launches sold on after ``age`` days: per day over the next LAUNCH_AHEAD_DAYS
        against the LAUNCH_LEVEL_DAYS before, shrunk towards 1 by :meth:`trust`, within
        LAUNCH_RATIO."""
        if age not in self.ratios:
            lived = self._lived(age)
            before = sum(float(y[age - LAUNCH_LEVEL_DAYS : age].sum()) for y in lived)
            after = sum(float(y[age : age + LAUNCH_AHEAD_DAYS].sum()) for y in lived)
            before /= LAUNCH_LEVEL_DAYS
            after /= LAUNCH_AHEAD_DAYS
            self.ratios[age] = (
                1.0
                if before <= 0
                else float(np.clip(1 + self.trust(age) * (after / before - 1), *LAUNCH_RATIO))
            )
        return self.ratios[age]


@dataclass(frozen=True)
class ProphetJob:
    units: np.ndarray
    sellable: np.ndarray
    first_day: date
    country: str | None
    horizon: int


def prophet_member(forecast: Forecast, units: np.ndarray, demand: str) -> np.ndarray:
    """Prophet's forecast as the blend takes it: never below zero and, for a sparse seller
    (intermittent or lumpy), the mean of its first LEVEL_DAYS days never above the SKU's best
    four weeks (the highest mean of any LEVEL_DAYS days in a row), scaled down whole so that
    its weekdays and holidays keep their shape. On a series of mostly empty days Prophet's
    trend can run away (up to 28 times a SKU's recent mean was seen,
    docs/forecasting-experiments.md), and a weight pooled over many SKUs would carry that into
    one SKU's published forecast. A bound on single days would not do: a lumpy seller's best
    day is a wholesale order, tens of times its daily mean.

    >>> f = Forecast(np.array([-1.0, 2.0, 10.0]), np.zeros(3), np.zeros(3))
    >>> sold = np.r_[np.zeros(30), np.full(LEVEL_DAYS, 2.0), [40.0], np.zeros(30)]
    >>> prophet_member(f, sold, "lumpy").round(2).tolist()  # best four weeks: 3.36 a day
    [0.0, 1.68, 8.39]
    >>> prophet_member(f, sold, "smooth").tolist()
    [0.0, 2.0, 10.0]
    """
    from models.ensemble import SPARSE_CLASSES

    mean = np.maximum(np.asarray(forecast.mean, dtype=float), 0)
    if demand not in SPARSE_CLASSES:
        return mean
    units = np.asarray(units, dtype=float)
    window = min(LEVEL_DAYS, units.size)
    best = float(np.convolve(units, np.ones(window) / window, "valid").max()) if window else 0.0
    # The level of its first LEVEL_DAYS days: the same whether 28 or 90 days are forecast, so
    # the validation run (28) and the nightly run (90) bound a SKU alike.
    level = float(mean[:LEVEL_DAYS].mean()) if mean.size else 0.0
    return mean * (best / level) if level > best else mean


def prophet_forecast(job: ProphetJob) -> Forecast:
    """One SKU's Prophet forecast (a top-level function: process pools pickle it)."""
    from models.prophet_forecaster import ProphetForecaster

    model = ProphetForecaster(job.country)
    model.fit(job.units, job.sellable, job.first_day)
    return model.forecast(job.horizon)


ProphetMap = Callable[[Callable[[ProphetJob], Forecast], list[ProphetJob]], Iterable[Forecast]]


@dataclass(frozen=True)
class ShopFit:
    """One night's members for a shop's SKUs (rows in the order given), the SKUs' demand
    classes and which coming days the shop will be closed."""

    members: MemberForecasts
    classes: list[str]
    sellable: list[np.ndarray]
    future_closed: np.ndarray
    last_day: date
    filled: list[np.ndarray]  # what the statsforecast members are fitted on
    learnt: list[np.ndarray]  # each SKU's units as the members learn them (models.one_offs)
    season: np.ndarray  # the year-end season's factor by coming day (models.season)

    def blendable(self, i: int, season: bool = True) -> dict[str, np.ndarray]:
        """Each member's forecast for SKU ``i`` as the blend takes it: the members that see
        only the last weeks with the year-end season on them; Prophet has its own year.
        Without ``season``, as fitted."""
        return {
            m: f[i] if m in YEARLY_MEMBERS or not season else f[i] * self.season[: f[i].size]
            for m, f in self.members.mean.items()
        }

    def has_season(self) -> bool:
        return bool(np.any(self.season != 1))

    def put_prophet(self, i: int, forecast: Forecast) -> None:
        """SKU ``i``'s Prophet forecast (its :func:`prophet_jobs` job's) as the blend takes it."""
        self.members.mean["prophet"][i] = prophet_member(forecast, self.learnt[i], self.classes[i])


def fit_shop(
    units: Sequence[np.ndarray],
    in_stock: Sequence[np.ndarray],
    last_day: date,
    horizon: int,
    country: str | None,
    run_map: ProphetMap = map,
    n_jobs: int = 1,
    intervals: bool = False,
) -> ShopFit:
    """Fit every member for every SKU of a shop. Each SKU's arrays end on ``last_day``;
    ``run_map`` runs the Prophet fits (a process pool's ``map`` in production)."""
    fit = prepare_shop(units, in_stock, last_day, horizon, country)
    add_statistical(fit, fit_statistical(fit.filled, horizon, intervals=intervals, n_jobs=n_jobs))
    started = time.perf_counter()
    jobs = prophet_jobs(fit, country, horizon)
    for (i, _), forecast in zip(jobs, run_map(prophet_forecast, [j for _, j in jobs]), strict=True):
        fit.put_prophet(i, forecast)
    fit.members.seconds["prophet"] = time.perf_counter() - started
    return fit


def prepare_shop(
    units: Sequence[np.ndarray],
    in_stock: Sequence[np.ndarray],
    last_day: date,
    horizon: int,
    country: str | None,
) -> ShopFit:
    """The shop's closed days, each SKU's sellable days, class and filled series, and the
    shop's top-down member; the statsforecast members come from :func:`add_statistical`."""
    from models.ensemble import demand_class

    days = max((y.size for y in units), default=0)
    closed = closed_days(shop_total(units, days))
    sellable = [
        np.asarray(ok, dtype=bool) & ~closed[days - y.size :]
        for y, ok in zip(units, in_stock, strict=True)
    ]
    units = [without_one_offs(y, ok) for y, ok in zip(units, sellable, strict=True)]
    # The shop's total as it would have sold with every SKU in stock: a SKU out of stock for
    # ten days pulled the total down, and with it the shop member's forecast of every other
    # SKU (a 5-a-day SKU of a three-SKU shop forecast at 1.9, falling; an outside test).
    stocked = [
        fill_censored(y, np.asarray(ok, dtype=bool)) for y, ok in zip(units, in_stock, strict=True)
    ]
    # Of the SKUs still selling, as the shop member takes its shares (:func:`stopped`).
    total = shop_total(
        [y for y, ok in zip(stocked, sellable, strict=True) if not stopped(y, ok)], days
    )
    classes = [demand_class(y, ok) for y, ok in zip(units, sellable, strict=True)]
    members = MemberForecasts({}, {}, {}, {})
    started = time.perf_counter()
    # The total's forecast is the shop member's and says where the season starts from.
    total_forecast = _total_forecast(total, ~closed, horizon)
    members.mean["shop"] = shop_member(stocked, sellable, ~closed, horizon, total_forecast)
    members.seconds["shop"] = time.perf_counter() - started
    started = time.perf_counter()
    members.mean["lifecycle"] = lifecycle_member(units, sellable, horizon)
    members.seconds["lifecycle"] = time.perf_counter() - started
    members.mean["prophet"] = np.full((len(units), horizon), np.nan)
    members.seconds["prophet"] = 0.0
    started = time.perf_counter()
    members.mean["river"] = (
        np.stack(
            [river_member(y, ok, last_day, horizon) for y, ok in zip(units, sellable, strict=True)]
        )
        if units
        else np.zeros((0, horizon))
    )
    members.seconds["river"] = time.perf_counter() - started
    return ShopFit(
        members,
        classes,
        sellable,
        future_closed(closed, last_day, horizon, country),
        last_day,
        [fillable(y, ok) for y, ok in zip(units, sellable, strict=True)],
        units,
        season_factor(
            total,
            closed,
            last_day,
            horizon,
            lambda: float(total_forecast[:SEASON].mean()),
        ),
    )


def river_member(y: np.ndarray, sellable: np.ndarray, last_day: date, horizon: int) -> np.ndarray:
    """The online model, learning the SKU's history day by day as the stream does."""
    from models.online import LEARN_DAYS, RiverForecaster

    y, sellable = y[-LEARN_DAYS:], sellable[-LEARN_DAYS:]
    model = RiverForecaster()
    model.fit(y, sellable, last_day - timedelta(days=y.size - 1))
    return model.forecast(horizon).mean


def add_statistical(fit: ShopFit, *parts: MemberForecasts) -> None:
    """Put the statsforecast members, fitted on ``fit.filled`` in consecutive parts, in."""
    for name in parts[0].mean:
        fit.members.mean[name] = np.vstack([p.mean[name] for p in parts])
        fit.members.lower[name] = np.vstack([p.lower[name] for p in parts])
        fit.members.upper[name] = np.vstack([p.upper[name] for p in parts])
        fit.members.seconds[name] = sum(p.seconds[name] for p in parts)


def prophet_jobs(fit: ShopFit, country: str | None, horizon: int) -> list[tuple[int, ProphetJob]]:
    """The Prophet fits a shop needs, by row: Prophet is the dearest member, so only SKUs
    allowed to blend it, with the history it needs, are fitted."""
    from models.ensemble import allowed_members

    recent = [
        (y[-PROPHET_LEARN_DAYS:], ok[-PROPHET_LEARN_DAYS:])
        for y, ok in zip(fit.learnt, fit.sellable, strict=True)
    ]
    return [
        (i, ProphetJob(y, ok, fit.last_day - timedelta(days=y.size - 1), country, horizon))
        for i, ((y, ok), demand) in enumerate(zip(recent, fit.classes, strict=True))
        if "prophet" in allowed_members(demand) and prophet_can_fit(y, ok)
    ]


def prophet_can_fit(units: np.ndarray, sellable: np.ndarray) -> bool:
    """Whether a SKU's history is enough for Prophet: PROPHET_AFTER_DAYS days it could sell
    on and PROPHET_AFTER_SALES days it sold on.

    >>> prophet_can_fit(np.r_[5.0, np.zeros(99)], np.ones(100, bool))
    False
    """
    sellable = np.asarray(sellable, dtype=bool)
    return (
        int(sellable.sum()) >= PROPHET_AFTER_DAYS
        and int(np.count_nonzero(np.asarray(units)[sellable])) >= PROPHET_AFTER_SALES
    )
