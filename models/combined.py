"""The forecast a merchant sees: last night's combined forecast, or a fallback before one.

The nightly run (:mod:`streams.refit`) blends several fitted members per SKU, weighted by
their errors on that SKU's recent days (:mod:`models.ensemble`), the online River model among
them: River gets weight only on SKUs where it did well. During the day the blend stands and
today's figure moves with what has sold (the nowcast, :func:`models.online.nowcast`).

A SKU gets a nightly forecast from NIGHTLY_MIN_DAYS sellable days. Without one yet it gets
the River model's own once that has learnt LOW_HISTORY_DAYS days; before that, the mean of its
last seven in-stock days. How far to trust each is :func:`confidence`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np

from models.forecast import SEASON, Forecast, MovingAverage, interval_from_residuals
from models.online import OnlineDemandModel

LOW_HISTORY_DAYS = 30
# A SKU gets the nightly blend from this many sellable days. Two weeks: on new products the
# blend beat the 7-day mean (MASE 0.95-1.05 against 1.04-1.23 on the synthetic shops with
# launches; docs/benchmarks.md, *Launches*), and its members' forecasts, stored with the run,
# are what weights the next launches' blends four weeks on.
NIGHTLY_MIN_DAYS = 2 * SEASON


def forecast_nightly(sellable: np.ndarray) -> bool:
    """Whether the nightly run forecasts a SKU with these sellable days (and stores its
    members' forecasts, which ``forecast evaluate`` must use no more of than it does)."""
    return int(np.count_nonzero(sellable)) >= NIGHTLY_MIN_DAYS


HORIZON = 90
STALE_AFTER_DAYS = 7


@dataclass(frozen=True)
class Baseline:
    """A nightly run's forecast for one SKU, from ``first_day`` on."""

    first_day: date
    mean: np.ndarray
    lower: np.ndarray
    upper: np.ndarray

    def window(self, first: date, horizon: int) -> Forecast | None:
        """The forecast for ``horizon`` days from ``first``. A run up to STALE_AFTER_DAYS old
        still serves (before tonight's run, or when a night's run failed): its last week repeats
        for the days it did not reach."""
        offset = (first - self.first_day).days
        if offset < 0 or offset > STALE_AFTER_DAYS or self.mean.size < SEASON:
            return None
        short = max(0, offset + horizon - self.mean.size)
        return Forecast(*(_extended(a, short)[offset : offset + horizon] for a in self.arrays()))

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.mean, self.lower, self.upper


def _extended(values: np.ndarray, days: int) -> np.ndarray:
    """``values`` and ``days`` more, repeating its last week.

    >>> _extended(np.arange(8.0), 3).tolist()
    [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 1.0, 2.0, 3.0]
    """
    if days <= 0:
        return values
    week = values[-SEASON:]
    return np.concatenate([values, np.resize(week, days)])


@dataclass(frozen=True)
class LiveForecast:
    first_day: date
    forecast: Forecast
    method: str  # "combined", "river" or "moving_average_7"


def confidence(method: str, mase: float | None) -> str:
    """How far a merchant may trust a SKU's forecast: high only once the nightly blend has
    beaten seasonal naive on the SKU's own judged days (MASE below 1); medium for a blend not
    judged yet or judged no better, and for the online model with no worse record; low for
    the seven-day mean and for an online model worse than seasonal naive. (A fresh shop's
    every SKU was "high" with no day judged, an outside tester found.)

    >>> confidence("combined", 0.8), confidence("combined", None), confidence("river", 1.2)
    ('high', 'medium', 'low')
    """
    worse = mase is not None and mase >= 1
    if method == "combined":
        return "high" if mase is not None and not worse else "medium"
    if method == "river":
        return "low" if worse else "medium"
    return "low"


def live_forecast(
    model: OnlineDemandModel,
    baseline: Baseline | None,
    first: date,
    horizon: int = HORIZON,
    sold_today: float = 0.0,
) -> LiveForecast:
    """The forecast a merchant sees for ``horizon`` days from ``first``. A SKU that has not
    closed a day on sale yet is forecast at what it sold today: its only evidence. (It was
    forecast at zero: a product selling on its first day was told its stock would never run
    out, and flagged overstock, an outside test found.)"""
    nightly = baseline.window(first, horizon) if baseline is not None else None
    if nightly is not None:
        return LiveForecast(first, nightly, "combined")
    if model.days_learned < LOW_HISTORY_DAYS:
        # No residuals yet: the interval is Poisson-like around the recent mean.
        level = model.recent_mean() if model.days_learned else sold_today
        fallback = interval_from_residuals(np.full(horizon, level), np.array([]))
        return LiveForecast(first, fallback, MovingAverage.name)
    return LiveForecast(first, model.forecast(first, horizon), "river")
