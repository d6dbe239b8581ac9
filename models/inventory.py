"""Inventory arithmetic on plain numbers (no I/O)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta
from typing import Literal

import numpy as np

DEMAND_WINDOW_DAYS = 28


def average_daily_demand(units: float, days: int = DEMAND_WINDOW_DAYS) -> float:
    """Mean units per day over a window.

    >>> average_daily_demand(56, 28)
    2.0
    """
    if days <= 0:
        raise ValueError("days must be positive")
    return units / days


def days_of_cover(stock: float | None, daily_demand: float) -> float | None:
    """Days until stock runs out at ``daily_demand``; None when it never does (or is untracked).
    Stock at or below zero has run out already, whatever sells: a new SKU with none sold and
    stock of -3 showed as never running out (an outside test).

    >>> days_of_cover(30, 2.0)
    15.0
    >>> days_of_cover(0, 2.0)
    0.0
    >>> days_of_cover(10, 0.0) is None
    True
    >>> days_of_cover(-3, 0.0)
    0.0
    """
    if stock is None:
        return None
    if stock <= 0:
        return 0.0
    if daily_demand <= 0:
        return None
    return stock / daily_demand


def cover(
    stock: int | None, sold_28d: int, forecast_days_of_cover: float | None, forecast: bool
) -> tuple[float, float | None, Literal["forecast", "28-day average"]]:
    """``(avg_daily_demand, days_of_cover, basis)`` of a SKU: the days of cover its forecast
    gives wherever it has one, else stock over the 28-day average, saying which.

    >>> cover(30, 56, 9.5, forecast=True)
    (2.0, 9.5, 'forecast')
    >>> cover(30, 56, None, forecast=False)
    (2.0, 15.0, '28-day average')
    """
    average = average_daily_demand(sold_28d, DEMAND_WINDOW_DAYS)
    if forecast:
        return average, forecast_days_of_cover, "forecast"
    return average, days_of_cover(stock, average), "28-day average"


def in_stock_days(
    units: np.ndarray, first_day: date, levels: Mapping[date, Mapping[int, tuple[int, int]]]
) -> np.ndarray:
    """Which days, from ``first_day``, the SKU could sell: it sold, or some location opened the
    day with stock, or had stock at some point of it. ``levels`` maps a day to each location's
    ``(closing, highest)`` level; levels from before ``first_day`` carry in. Without any
    recorded level stock is untracked, and every day could sell. Forecasters treat the other
    days as missing, not as zero demand.

    >>> d = date(2026, 1, 1)
    >>> in_stock_days(np.array([0, 0, 2.0]), d, {d: {1: (0, 3)}}).tolist()
    [True, False, True]
    """
    in_stock = np.ones(units.size, dtype=bool)
    if not levels:
        return in_stock
    closing: dict[int, int] = {}
    for day in sorted(d for d in levels if d < first_day):
        closing.update({loc: c for loc, (c, _) in levels[day].items()})
    for i in range(units.size):
        today = levels.get(first_day + timedelta(days=i), {})
        opening_total = sum(closing.values()) if closing else 1
        highest_today = max((h for _, h in today.values()), default=0)
        in_stock[i] = units[i] > 0 or opening_total > 0 or highest_today > 0
        closing.update({loc: c for loc, (c, _) in today.items()})
    return in_stock
