"""The forecaster contract and the baseline forecasters (no I/O).

A forecaster learns from a daily series and forecasts any horizon with an 80 % interval.
Days out of stock are censored demand (nothing could sell), never zero demand: forecasters
receive ``in_stock`` and must not learn from those days.

>>> f = SeasonalNaive()
>>> f.fit(np.array([1, 2, 3, 4, 5, 6, 7] * 3, dtype=float))
>>> f.forecast(3).mean.tolist()
[1.0, 2.0, 3.0]
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import date

import numpy as np

INTERVAL = (0.10, 0.90)  # an 80 % interval
SEASON = 7


@dataclass(frozen=True)
class Forecast:
    mean: np.ndarray
    lower: np.ndarray
    upper: np.ndarray


@dataclass(frozen=True)
class Series:
    """A SKU's daily units, oldest first, with whether it could sell each day."""

    y: np.ndarray
    in_stock: np.ndarray | None = None
    start: date | None = None


class Forecaster(ABC):
    """Learns a daily demand series, then forecasts ``horizon`` days after its last day."""

    name: str

    @abstractmethod
    def fit(
        self, y: np.ndarray, in_stock: np.ndarray | None = None, start: date | None = None
    ) -> None:
        """Learn from ``y`` (units per day, oldest first, the first on ``start``); days where
        ``in_stock`` is False are ignored."""

    @abstractmethod
    def forecast(self, horizon: int) -> Forecast:
        """Expected units per day for the next ``horizon`` days, with an 80 % interval."""


def fill_censored(y: np.ndarray, in_stock: np.ndarray | None, window: int = 28) -> np.ndarray:
    """``y`` with out-of-stock days replaced by the mean of the in-stock days before them.

    >>> fill_censored(np.array([4., 4., 0., 4.]), np.array([True, True, False, True])).tolist()
    [4.0, 4.0, 4.0, 4.0]
    """
    y = np.asarray(y, dtype=float)
    if in_stock is None or in_stock.all():
        return y
    filled = y.copy()
    for t in np.flatnonzero(~in_stock):
        past = filled[max(0, t - window) : t][in_stock[max(0, t - window) : t]]
        filled[t] = past.mean() if past.size else 0.0
    return filled


def interval_from_residuals(mean: np.ndarray, residuals: np.ndarray) -> Forecast:
    """An 80 % interval from the empirical quantiles of past one-step errors."""
    if residuals.size < 5:
        spread_lo = spread_hi = np.sqrt(np.maximum(mean, 0))  # Poisson-like fallback
        lower, upper = mean - 1.2816 * spread_lo, mean + 1.2816 * spread_hi
    else:
        lo, hi = np.quantile(residuals, INTERVAL)
        lower, upper = mean + lo, mean + hi
    return Forecast(np.maximum(mean, 0), np.maximum(lower, 0), np.maximum(upper, 0))


class SeasonalNaive(Forecaster):
    """Each day repeats the same weekday of the last observed week."""

    name = "seasonal_naive"

    def fit(
        self, y: np.ndarray, in_stock: np.ndarray | None = None, start: date | None = None
    ) -> None:
        self._y = fill_censored(y, in_stock)
        if self._y.size < SEASON:
            raise ValueError("seasonal naive needs at least one week")
        self._residuals = self._y[SEASON:] - self._y[:-SEASON]

    def forecast(self, horizon: int) -> Forecast:
        last_week = self._y[-SEASON:]
        mean = np.array([last_week[i % SEASON] for i in range(horizon)])
        return interval_from_residuals(mean, self._residuals)


class MovingAverage(Forecaster):
    """The mean of the last ``window`` in-stock days, flat over the horizon; the fallback for
    SKUs with little history."""

    name = "moving_average_7"

    def __init__(self, window: int = 7) -> None:
        self.window = window

    def fit(
        self, y: np.ndarray, in_stock: np.ndarray | None = None, start: date | None = None
    ) -> None:
        y = np.asarray(y, dtype=float)
        mask = np.ones(y.size, dtype=bool) if in_stock is None else in_stock
        seen = y[mask]
        self._level = float(seen[-self.window :].mean()) if seen.size else 0.0
        if seen.size > self.window:
            rolling = np.convolve(seen, np.ones(self.window) / self.window, mode="valid")[:-1]
            self._residuals = seen[self.window :] - rolling
        else:
            self._residuals = np.array([])

    def forecast(self, horizon: int) -> Forecast:
        return interval_from_residuals(np.full(horizon, self._level), self._residuals)
