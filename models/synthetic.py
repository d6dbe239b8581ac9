"""Seeded synthetic shop data: realistic daily demand per SKU (no I/O).

One call makes one shop. What its SKUs share is the shop's: a weekly rhythm (its foot
traffic), a yearly season, the weekdays it is closed (a third of shops close on Sundays, some
on Mondays too), the public holidays it closes on, a pre-Christmas rush, Black Friday and a few
shop-wide sales. Each SKU then has its own level, trend, weekly and yearly deviation and
over-dispersed noise, and one of these kinds:

- ``steady`` and ``seasonal`` sellers (the latter with a strong yearly curve of their own);
- ``intermittent`` long-tail SKUs selling a unit every few days;
- ``lumpy`` ones, a trickle of retail sales plus a wholesale order of dozens every few weeks;
- ``launch`` products with a short history, growing;
- ``promo`` SKUs with promotions of their own.

Every SKU may run out of stock for a while, and then sells nothing whatever its demand. On a
closed day nothing sells and nothing is recorded. ``demand`` is the latent truth, ``sales`` what
the shop records, ``in_stock`` whether it could sell.

>>> skus = generate(n_skus=3, days=60, seed=1)
>>> [len(s.sales) for s in skus] == [len(s.dates) for s in skus]
True
>>> generate(n_skus=3, days=60, seed=1)[0].sales.tolist() == skus[0].sales.tolist()
True
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import holidays
import numpy as np

from models.forecast import Series

KINDS = ("steady", "seasonal", "intermittent", "lumpy", "launch", "promo")
KIND_SHARES = (0.30, 0.15, 0.25, 0.08, 0.10, 0.12)
CLOSING_HOLIDAYS = ("Christmas Day", "New Year's Day", "Thanksgiving Day", "Independence Day")


@dataclass(frozen=True)
class SyntheticSku:
    sku: str
    kind: str
    dates: list[date]
    demand: np.ndarray  # latent expected demand per day
    sales: np.ndarray  # units sold (integers); zero while out of stock or closed
    in_stock: np.ndarray  # bool per day
    price: float


@dataclass(frozen=True)
class Shop:
    """What every SKU of one shop shares, per day of its calendar."""

    dates: list[date]
    open: np.ndarray  # False on the weekdays and holidays it closes
    factor: np.ndarray  # weekly × yearly × events, about 1 on average


def _shop(rng: np.random.Generator, end: date, days: int) -> Shop:
    dates = [end - timedelta(days=days - 1 - i) for i in range(days)]
    weekday = np.array([d.weekday() for d in dates])
    day_of_year = np.array([d.timetuple().tm_yday for d in dates], dtype=float)
    closed_weekdays: set[int] = set()
    physical = rng.random() < 0.6
    if physical:
        roll = rng.random()
        if roll < 0.35:
            closed_weekdays = {6}
        elif roll < 0.5:
            closed_weekdays = {6, 0}
    calendar = holidays.country_holidays("US", years=range(dates[0].year, end.year + 1))
    closes_on = {d for d, name in calendar.items() if any(h in name for h in CLOSING_HOLIDAYS)}
    is_open = np.array(
        [d.weekday() not in closed_weekdays and not (physical and d in closes_on) for d in dates]
    )
    rhythm = np.array([-0.25, -0.2, -0.1, 0.0, 0.15, 0.45, 0.3]) * rng.uniform(0.3, 1.3)
    rhythm += rng.normal(0, 0.05, 7)
    weekly = np.clip(1 + rhythm, 0.3, None)[weekday]
    yearly = 1 + rng.uniform(0.05, 0.35) * np.sin(
        2 * np.pi * day_of_year / 365.25 + rng.uniform(0, 2 * np.pi)
    )
    events = np.ones(days)
    christmas_rush = rng.uniform(1.2, 1.8)
    black_friday = rng.uniform(1.5, 3.0)
    for i, d in enumerate(dates):
        if d.month == 12 and 8 <= d.day <= 23:
            events[i] *= christmas_rush
        thanksgiving = next(
            (h for h, name in calendar.items() if name == "Thanksgiving Day" and h.year == d.year),
            None,
        )
        if thanksgiving is not None and 1 <= (d - thanksgiving).days <= 4:
            events[i] *= black_friday
    for _ in range(rng.poisson(days / 120)):  # shop-wide sales
        start = int(rng.integers(0, max(days - 7, 1)))
        events[start : start + int(rng.integers(3, 8))] *= rng.uniform(1.3, 1.8)
    return Shop(dates, is_open, weekly * yearly * events)


def _stockouts(rng: np.random.Generator, days: int) -> np.ndarray:
    in_stock = np.ones(days, dtype=bool)
    for _ in range(rng.poisson(days / 240)):
        start = int(rng.integers(0, max(days - 3, 1)))
        in_stock[start : start + int(rng.integers(3, 15))] = False
    return in_stock


def _one(rng: np.random.Generator, index: int, kind: str, shop: Shop) -> SyntheticSku:
    days = len(shop.dates)
    length = days if kind != "launch" else int(rng.integers(10, min(120, days) + 1))
    cut = slice(days - length, days)
    dates = shop.dates[cut]
    t = np.arange(length, dtype=float)
    weekday = np.array([d.weekday() for d in dates])
    day_of_year = np.array([d.timetuple().tm_yday for d in dates], dtype=float)

    if kind == "intermittent":
        level = rng.uniform(0.05, 0.6)
    elif kind == "lumpy":
        level = rng.uniform(0.1, 0.8)
    else:
        level = rng.lognormal(mean=1.0, sigma=0.9)
    own_weekly = np.clip(1 + rng.normal(0, 0.08, 7), 0.5, None)[weekday]
    yearly_amplitude = rng.uniform(0.3, 0.7) if kind == "seasonal" else rng.uniform(0.0, 0.1)
    own_yearly = 1 + yearly_amplitude * np.sin(
        2 * np.pi * day_of_year / 365.25 + rng.uniform(0, 2 * np.pi)
    )
    growth = rng.uniform(-0.4, 0.5) if kind != "launch" else rng.uniform(0.5, 2.0)
    trend = np.clip(1 + growth * t / max(days, 1), 0.2, None)
    demand = level * shop.factor[cut] * own_weekly * own_yearly * trend
    if kind == "promo":
        for _ in range(max(1, length // 60)):
            start = int(rng.integers(0, max(length - 7, 1)))
            demand[start : start + int(rng.integers(3, 8))] *= rng.uniform(1.5, 3.0)
    # Gamma-Poisson: daily sales are more variable than a plain Poisson, as in real shops.
    dispersion = rng.uniform(2.0, 8.0)
    noisy = demand * rng.gamma(dispersion, 1 / dispersion, size=length)
    sold = rng.poisson(noisy)
    if kind == "lumpy":  # wholesale orders: rare, large, of a size the buyer tends to repeat
        order_size = rng.uniform(10, 60)
        orders = rng.random(length) < rng.uniform(1 / 45, 1 / 12)
        sold = sold + np.where(orders, rng.poisson(order_size, length), 0)
        demand = demand + order_size * rng.uniform(1 / 45, 1 / 12)
    is_open = shop.open[cut]
    demand = np.where(is_open, demand, 0.0)
    in_stock = _stockouts(rng, length)
    sales = np.where(in_stock & is_open, sold, 0)
    return SyntheticSku(
        sku=f"SYN-{index:04d}-{kind[:4].upper()}",
        kind=kind,
        dates=dates,
        demand=demand,
        sales=sales.astype(int),
        in_stock=in_stock,
        price=float(round(rng.uniform(5, 120), 2)),
    )


def as_series(sku: SyntheticSku) -> Series:
    return Series(sku.sales.astype(float), sku.in_stock, sku.dates[0])


def kind_shares(chosen: Mapping[str, float]) -> tuple[float, ...]:
    """The share of each of KINDS: ``chosen`` as given, the other kinds sharing what is left in
    their usual proportions.

    >>> [round(x, 3) for x in kind_shares({"intermittent": 0.55, "lumpy": 0.2})]
    [0.112, 0.056, 0.55, 0.2, 0.037, 0.045]
    """
    unknown = set(chosen) - set(KINDS)
    if unknown:
        raise ValueError(f"unknown kind(s) {', '.join(sorted(unknown))}; kinds: {', '.join(KINDS)}")
    if any(not 0 <= x <= 1 for x in chosen.values()) or sum(chosen.values()) > 1 + 1e-9:
        raise ValueError("kind shares must be between 0 and 1 and sum to at most 1")
    left = 1 - sum(chosen.values())
    usual = sum(x for k, x in zip(KINDS, KIND_SHARES, strict=True) if k not in chosen)
    if usual == 0 and left > 1e-9:
        raise ValueError("the chosen kind shares must sum to 1 when every kind is chosen")
    shares = [
        chosen[k] if k in chosen else (x / usual * left if usual else 0.0)
        for k, x in zip(KINDS, KIND_SHARES, strict=True)
    ]
    total = sum(shares)  # 1 but for rounding: rng.choice wants it exact
    return tuple(x / total for x in shares)


def generate(
    n_skus: int,
    days: int = 730,
    seed: int = 0,
    end: date | None = None,
    shares: tuple[float, ...] = KIND_SHARES,
) -> list[SyntheticSku]:
    """One shop's ``n_skus`` series of up to ``days`` days ending on ``end``, the same for the
    same seed; ``shares`` are the shares of KINDS (:func:`kind_shares`)."""
    rng = np.random.default_rng(seed)
    end = end or date(2026, 10, 31)
    shop = _shop(rng, end, days)
    kinds = rng.choice(KINDS, size=n_skus, p=np.array(shares))
    return [_one(rng, i, str(kind), shop) for i, kind in enumerate(kinds)]


def write_csv(skus: list[SyntheticSku], path: Path) -> None:
    """The ``sku,date,quantity`` CSV that ``stockpulse forecast evaluate`` reads (a day without
    a row sold nothing, as in a shop's order export)."""
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["sku", "date", "quantity"])
        for s in skus:
            for d, q in zip(s.dates, s.sales, strict=True):
                if q:
                    writer.writerow([s.sku, d.isoformat(), int(q)])


def write_expected_csv(skus: list[SyntheticSku], path: Path) -> None:
    """The expected demand each SKU's sales were drawn from, in the same CSV format: what
    ``forecast evaluate --truth`` scores as the best a forecast of the mean can do."""
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["sku", "date", "quantity"])
        for s in skus:
            for d, expected in zip(s.dates, s.demand, strict=True):
                writer.writerow([s.sku, d.isoformat(), f"{expected:.6g}"])
