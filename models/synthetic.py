"""Seeded synthetic store data: realistic daily demand per SKU (no I/O).

Each SKU gets a base level, a weekly rhythm, yearly seasonality, a trend and over-dispersed
noise; some are intermittent low sellers, some launched recently, some run promotions; every
SKU may run out of stock for a while, and then sells nothing whatever its demand. ``demand`` is
the latent truth, ``sales`` what the shop records, ``in_stock`` whether it could sell.

>>> skus = generate(n_skus=3, days=60, seed=1)
>>> [len(s.sales) for s in skus] == [len(s.dates) for s in skus]
True
>>> generate(n_skus=3, days=60, seed=1)[0].sales.tolist() == skus[0].sales.tolist()
True
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np

from models.forecast import Series

KINDS = ("steady", "seasonal", "intermittent", "launch", "promo")


@dataclass(frozen=True)
class SyntheticSku:
    sku: str
    kind: str
    dates: list[date]
    demand: np.ndarray  # latent expected demand per day
    sales: np.ndarray  # units sold (integers); zero while out of stock
    in_stock: np.ndarray  # bool per day
    price: float


def _stockouts(rng: np.random.Generator, days: int) -> np.ndarray:
    in_stock = np.ones(days, dtype=bool)
    for _ in range(rng.poisson(days / 240)):
        start = int(rng.integers(0, max(days - 3, 1)))
        in_stock[start : start + int(rng.integers(3, 15))] = False
    return in_stock


def _one(rng: np.random.Generator, index: int, kind: str, end: date, days: int) -> SyntheticSku:
    length = days
    if kind == "launch":
        length = int(rng.integers(10, min(90, days) + 1))  # new product: short history
    dates = [end - timedelta(days=length - 1 - i) for i in range(length)]
    t = np.arange(length, dtype=float)
    weekday = np.array([d.weekday() for d in dates])
    day_of_year = np.array([d.timetuple().tm_yday for d in dates], dtype=float)

    level = rng.lognormal(mean=1.2, sigma=0.8) if kind != "intermittent" else rng.uniform(0.1, 0.5)
    weekly_amplitude = rng.uniform(0.1, 0.5)
    weekly = 1 + weekly_amplitude * np.array([-0.4, -0.3, -0.2, 0.0, 0.3, 0.6, 0.4])[weekday]
    yearly_amplitude = rng.uniform(0.3, 0.6) if kind == "seasonal" else rng.uniform(0.0, 0.15)
    phase = rng.uniform(0, 2 * np.pi)
    yearly = 1 + yearly_amplitude * np.sin(2 * np.pi * day_of_year / 365.25 + phase)
    growth = rng.uniform(-0.3, 0.5) if kind != "launch" else rng.uniform(0.5, 2.0)
    trend = 1 + growth * t / max(days, 1)
    demand = level * weekly * yearly * np.clip(trend, 0.2, None)
    if kind == "promo":
        for _ in range(max(1, length // 60)):
            start = int(rng.integers(0, max(length - 7, 1)))
            demand[start : start + int(rng.integers(3, 8))] *= rng.uniform(1.5, 3.0)

    # Gamma-Poisson: daily sales are more variable than a plain Poisson, as in real shops.
    dispersion = 5.0
    noisy = demand * rng.gamma(dispersion, 1 / dispersion, size=length)
    sold = rng.poisson(noisy)
    in_stock = _stockouts(rng, length)
    sales = np.where(in_stock, sold, 0)
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


def generate(
    n_skus: int, days: int = 730, seed: int = 0, end: date | None = None
) -> list[SyntheticSku]:
    """``n_skus`` series of up to ``days`` days ending on ``end``, the same for the same seed."""
    rng = np.random.default_rng(seed)
    end = end or date(2026, 10, 31)
    weights = np.array([0.35, 0.2, 0.2, 0.1, 0.15])
    kinds = rng.choice(KINDS, size=n_skus, p=weights)
    return [_one(rng, i, str(kind), end, days) for i, kind in enumerate(kinds)]


def write_csv(skus: list[SyntheticSku], path: Path) -> None:
    """The ``sku,date,quantity`` CSV that ``stockpulse forecast evaluate`` reads."""
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["sku", "date", "quantity"])
        for s in skus:
            for d, q in zip(s.dates, s.sales, strict=True):
                writer.writerow([s.sku, d.isoformat(), int(q)])
