"""Inventory arithmetic on plain numbers (no I/O)."""

from __future__ import annotations

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

    >>> days_of_cover(30, 2.0)
    15.0
    >>> days_of_cover(0, 2.0)
    0.0
    >>> days_of_cover(10, 0.0) is None
    True
    """
    if stock is None or daily_demand <= 0:
        return None
    return max(stock, 0) / daily_demand
