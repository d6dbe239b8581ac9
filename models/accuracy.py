"""Forecast accuracy: MASE, RMSSE, WAPE, bias and interval coverage.

MASE follows Hyndman & Koehler (2006): the forecast's mean absolute error divided by the
in-sample mean absolute error of the seasonal naive forecast (season 7 for daily retail data).
RMSSE is the M5 competition's: squared errors, scaled by the one-step naive forecast's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

# Scored days before an accuracy figure is reported, for every model: fewer is noise.
ACCURACY_AFTER_DAYS = 14


def _check(actual: Sequence[float], forecast: Sequence[float]) -> None:
    if len(actual) != len(forecast) or not actual:
        raise ValueError("actual and forecast must be non-empty and of equal length")


def seasonal_naive_scale(history: Sequence[float], season: int = 7) -> float:
    """Mean |y_t − y_{t−season}| over the history: MASE's denominator.

    >>> seasonal_naive_scale([2, 4, 6, 3, 4, 8], season=3)  # |3-2|, |4-4|, |8-6|
    1.0
    """
    if len(history) <= season:
        raise ValueError("history must be longer than one season")
    diffs = [abs(history[t] - history[t - season]) for t in range(season, len(history))]
    return sum(diffs) / len(diffs)


def mase(
    actual: Sequence[float], forecast: Sequence[float], history: Sequence[float], season: int = 7
) -> float:
    """Mean absolute scaled error; < 1 beats the in-sample seasonal naive forecast.

    >>> mase([2, 6], [4, 4], history=[2, 4, 6, 3, 4, 8], season=3)
    2.0
    """
    _check(actual, forecast)
    scale = seasonal_naive_scale(history, season)
    mae = sum(abs(a - f) for a, f in zip(actual, forecast, strict=True)) / len(actual)
    if scale == 0:
        return 0.0 if mae == 0 else float("inf")
    return mae / scale


def rmsse(actual: Sequence[float], forecast: Sequence[float], history: Sequence[float]) -> float:
    """Root mean squared scaled error (M5): √(MSE / in-sample MSE of the one-step naive
    forecast), the history counted from its first sale.

    >>> rmsse([2, 6], [4, 4], history=[0, 0, 2, 4, 6])  # MSE 4 over naive's (4 + 4) / 2
    1.0
    """
    _check(actual, forecast)
    start = next((i for i, y in enumerate(history) if y > 0), len(history))
    sold = history[start:]
    if len(sold) < 2:
        raise ValueError("history must have two days from its first sale")
    scale = sum((sold[t] - sold[t - 1]) ** 2 for t in range(1, len(sold))) / (len(sold) - 1)
    mse = sum((a - f) ** 2 for a, f in zip(actual, forecast, strict=True)) / len(actual)
    if scale == 0:
        return 0.0 if mse == 0 else float("inf")
    return math.sqrt(mse / scale)


def wape(actual: Sequence[float], forecast: Sequence[float]) -> float:
    """Weighted absolute percentage error: Σ|y − ŷ| / Σ|y|.

    >>> wape([10, 0, 30], [12, 1, 27])
    0.15
    """
    _check(actual, forecast)
    volume = sum(abs(a) for a in actual)
    error = sum(abs(a - f) for a, f in zip(actual, forecast, strict=True))
    if volume == 0:
        return 0.0 if error == 0 else float("inf")
    return error / volume


def bias(actual: Sequence[float], forecast: Sequence[float]) -> float:
    """Relative bias Σ(ŷ − y) / Σy: positive when the forecast is too high.

    >>> bias([10, 10], [12, 11])
    0.15
    """
    _check(actual, forecast)
    volume = sum(actual)
    over = sum(f - a for a, f in zip(actual, forecast, strict=True))
    if volume == 0:
        return 0.0 if over == 0 else float("inf")
    return over / volume


def coverage(actual: Sequence[float], lower: Sequence[float], upper: Sequence[float]) -> float:
    """Share of actuals inside their interval; an honest 80 % interval scores about 0.8.

    >>> coverage([1, 5, 9, 3], [0, 0, 0, 4], [2, 6, 8, 6])
    0.5
    """
    _check(actual, lower)
    _check(actual, upper)
    inside = sum(lo <= a <= hi for a, lo, hi in zip(actual, lower, upper, strict=True))
    return inside / len(actual)
