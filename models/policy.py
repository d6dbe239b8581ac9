"""Inventory policy: sales velocity, stockout projection, safety stock, reorder point and
quantity, overstock and dead stock, ABC classes. Plain numbers in, plain numbers out.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist

DEAD_STOCK_WINDOWS = (30, 60, 90)
EXCESS_AFTER_DAYS = 14  # days on sale before a SKU can be overstock: two weeks of sales


def service_level_z(service_level: float) -> float:
    """The standard normal quantile for a cycle service level.

    >>> round(service_level_z(0.95), 4)
    1.6449
    """
    if not 0.5 <= service_level < 1:
        raise ValueError("service level must be in [0.5, 1)")
    return NormalDist().inv_cdf(service_level)


def sales_velocity(daily_units: Sequence[float], in_stock: Sequence[bool] | None = None) -> float:
    """Mean units per day over days the SKU could be sold.

    A day out of stock says nothing about demand (nothing could be sold), so it is left out;
    pass ``in_stock=None`` for products that may oversell.

    >>> sales_velocity([4, 0, 0, 6], in_stock=[True, False, False, True])
    5.0
    >>> sales_velocity([4, 0, 0, 6])
    2.5
    """
    if in_stock is not None and len(in_stock) != len(daily_units):
        raise ValueError("daily_units and in_stock differ in length")
    days = [
        u for u, ok in zip(daily_units, in_stock or [True] * len(daily_units), strict=True) if ok
    ]
    return sum(days) / len(days) if days else 0.0


def safety_stock(
    service_level: float,
    demand_sd: float,
    lead_time_days: float,
    demand_mean: float = 0.0,
    lead_time_sd_days: float = 0.0,
) -> float:
    """Units held against demand (and lead-time) variability over the lead time:
    ``z · sqrt(L · σ_d² + d² · σ_L²)``, which is ``z · σ_d · √L`` for a fixed lead time.

    >>> round(safety_stock(0.95, demand_sd=20, lead_time_days=16), 1)
    131.6
    """
    variance = lead_time_days * demand_sd**2 + demand_mean**2 * lead_time_sd_days**2
    return service_level_z(service_level) * math.sqrt(variance)


def reorder_point(lead_time_demand: float, safety: float) -> float:
    """Stock level at which to reorder: expected lead-time demand plus safety stock.

    >>> reorder_point(1600, 131.6)
    1731.6
    """
    return lead_time_demand + safety


def reorder_quantity(
    demand_to_cover: float,
    safety: float,
    on_hand: float,
    incoming: float = 0.0,
) -> int:
    """Units to order now (order-up-to), never negative: ``demand_to_cover`` is the demand
    until the order, arriving after the lead time, has run for the target cover days
    (:func:`demand_over`), so stock on hand, what is on order and the order itself last that
    long with the safety stock left.

    >>> reorder_quantity(demand_to_cover=136, safety=10, on_hand=50, incoming=20)
    76
    """
    wanted = demand_to_cover + safety - on_hand - incoming
    return max(0, math.ceil(wanted - 1e-9))


TAIL_DAYS = 28  # beyond its horizon, a forecast goes on at the mean of its last four weeks


def demand_over(daily_mean: Sequence[float], days: int) -> float:
    """Units the forecast expects over its first ``days`` days; past its horizon, at the mean
    of its last TAIL_DAYS (a lead time and a target cover may reach beyond it together).

    >>> demand_over([1.0] * 60 + [2.0] * 30, 100)
    140.0
    >>> demand_over([3.0, 1.0], 1), demand_over([], 5)
    (3.0, 0.0)
    """
    if days <= 0 or not daily_mean:
        return 0.0
    within = float(sum(daily_mean[:days]))
    beyond = days - len(daily_mean)
    if beyond <= 0:
        return within
    tail = daily_mean[-TAIL_DAYS:]
    return within + beyond * float(sum(tail) / len(tail))


@dataclass(frozen=True)
class StockoutProjection:
    days_of_cover: float | None  # None: the forecast never exhausts the stock
    stockout_day_index: int | None  # index into the forecast of the first day short


def project_stockout(
    stock: float, daily_forecast: Sequence[float], incoming: float = 0.0
) -> StockoutProjection:
    """Walk a daily demand forecast down from stock on hand plus incoming.

    Days of cover is fractional: the stock runs out part-way through the day it ends.

    Nothing on hand or coming is out already, whatever the forecast: a SKU oversold to -3
    with nothing forecast showed as never running out (an outside test).

    >>> project_stockout(10, [4, 4, 4, 4])
    StockoutProjection(days_of_cover=2.5, stockout_day_index=2)
    >>> project_stockout(10, [1, 1]).days_of_cover is None
    True
    >>> project_stockout(-3, [0, 0])
    StockoutProjection(days_of_cover=0.0, stockout_day_index=0)
    """
    left = max(stock, 0.0) + incoming
    if left <= 0:
        return StockoutProjection(0.0, 0)
    for day, demand in enumerate(daily_forecast):
        if demand >= left and demand > 0:
            return StockoutProjection(day + left / demand, day)
        left -= demand
    return StockoutProjection(None, None)


def is_overstock(days_of_cover: float | None, stock: float, threshold_days: float) -> bool:
    """More cover than ``threshold_days`` (no demand at all with stock on hand counts too)."""
    if stock <= 0:
        return False
    return days_of_cover is None or days_of_cover > threshold_days


def dead_stock_window(
    days_since_last_sale: int | None, stock: float, days_on_sale: int | None = None
) -> int | None:
    """The longest of the 30/60/90-day windows without a sale, for a SKU that has stock. A SKU
    that never sold has gone without one for as long as it has been on sale (``days_on_sale``;
    unknown: for longer than every window): one stocked this week is not dead stock.

    >>> dead_stock_window(75, stock=12)
    60
    >>> dead_stock_window(10, stock=12) is None
    True
    >>> dead_stock_window(None, stock=12), dead_stock_window(None, stock=12, days_on_sale=3)
    (90, None)
    """
    if stock <= 0:
        return None
    if days_since_last_sale is None:  # never sold
        if days_on_sale is None:
            return DEAD_STOCK_WINDOWS[-1]
        days_since_last_sale = days_on_sale
    passed = [w for w in DEAD_STOCK_WINDOWS if days_since_last_sale >= w]
    return passed[-1] if passed else None


ABC_WINDOW_DAYS = 90  # revenue behind the ABC classes: a quarter, long enough to cover a season


def abc_classes(
    revenue: Mapping[str, float], a_share: float = 0.80, b_share: float = 0.15
) -> dict[str, str]:
    """Pareto classes by revenue: the SKUs making the first 80 % are A, the next 15 % B, the
    rest C. A SKU is classed by where its revenue starts, so one big SKU alone can be A.

    >>> abc_classes({"a": 70, "b": 20, "c": 6, "d": 4})
    {'a': 'A', 'b': 'A', 'c': 'B', 'd': 'C'}
    """
    total = sum(max(v, 0.0) for v in revenue.values())
    # A SKU starting exactly on a boundary belongs to the lower class; the tolerance keeps
    # float sums such as 0.80 + 0.15 = 0.9500000000000001 from moving it up.
    a_end, b_end = a_share - 1e-9, a_share + b_share - 1e-9
    classes: dict[str, str] = {}
    cumulative = 0.0
    for sku, value in sorted(revenue.items(), key=lambda kv: (-kv[1], kv[0])):
        start = cumulative / total if total else 1.0
        classes[sku] = "A" if start < a_end else "B" if start < b_end else "C"
        cumulative += max(value, 0.0)
    return classes


@dataclass(frozen=True)
class InventoryPlan:
    days_of_cover: float | None
    stockout_day_index: int | None
    safety_stock: float
    reorder_point: float
    reorder_quantity: int
    overstock: bool
    dead_stock_days: int | None


def inventory_plan(
    stock: float,
    daily_mean: Sequence[float],
    daily_sd: Sequence[float],
    lead_time_days: int,
    service_level: float,
    target_cover_days: int,
    overstock_days: float,
    days_since_last_sale: int | None,
    incoming: float = 0.0,
    days_on_sale: int | None = None,
) -> InventoryPlan:
    """Everything a merchant acts on, from a daily forecast (mean and spread) and stock.

    Lead-time demand and its spread come from the forecast itself, so a season or a trend in
    the next weeks moves the reorder point. Overstock needs EXCESS_AFTER_DAYS on sale
    (``days_on_sale``; unknown: enough): a forecast of a product's first days is no ground to
    tell a merchant it has too much of it.

    >>> plan = inventory_plan(50, [4.0] * 60, [2.0] * 60, lead_time_days=4,
    ...                       service_level=0.95, target_cover_days=30, overstock_days=180,
    ...                       days_since_last_sale=1)
    >>> plan.days_of_cover, round(plan.safety_stock, 2), round(plan.reorder_point, 2)
    (12.5, 6.58, 22.58)
    >>> plan.reorder_quantity  # (4 days' lead + 30 days' cover) × 4 + 6.58 − 50
    93

    The order is what lasts the target cover once it arrives: stock on hand is spent over
    the lead time first. Ordering the target cover's demand from today left a SKU below its
    reorder point with an order of 0 whenever the lead time was longer than the cover, and
    every order short by the lead time's demand (an outside test).
    """
    lead = max(1, lead_time_days)
    lead_demand = float(sum(daily_mean[:lead]))
    sd = float(sum(daily_sd[:lead]) / min(lead, len(daily_sd))) if daily_sd else 0.0
    safety = safety_stock(service_level, sd, lead)
    to_cover = demand_over(daily_mean, lead + max(0, target_cover_days))
    projection = project_stockout(stock, daily_mean, incoming)
    return InventoryPlan(
        days_of_cover=projection.days_of_cover,
        stockout_day_index=projection.stockout_day_index,
        safety_stock=safety,
        reorder_point=reorder_point(lead_demand, safety),
        reorder_quantity=reorder_quantity(to_cover, safety, stock, incoming),
        overstock=(days_on_sale is None or days_on_sale >= EXCESS_AFTER_DAYS)
        and is_overstock(projection.days_of_cover, stock, overstock_days),
        dead_stock_days=dead_stock_window(days_since_last_sale, stock, days_on_sale),
    )
