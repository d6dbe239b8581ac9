"""One-off orders: a day a SKU sold many times what it sells on its big days, once.

A wholesale order of 200 units for a product that sells one a day is demand that happened,
but not demand that comes back: left in, the weekly members read it as a weekday that sells
68 units every week (ETS), the shop's total carried it into every SKU's Tuesday, and a
1-a-day product got a critical stockout alert and a reorder of 742 units (an outside test).
Before the members are fitted, such a day is taken as one of the SKU's big days. A SKU whose
big orders come back (a lumpy wholesale seller) keeps them: a day counts as a one-off only
while days like it stay rarer than about one a year of history.
"""

from __future__ import annotations

import math

import numpy as np

ONE_OFF_TIMES = 10  # a one-off sells this many times the SKU's big days (90th percentile)
BIG_DAY_QUANTILE = 0.9
MIN_SALE_DAYS = 8  # fewer days with a sale: too little to say what a big day is
DAYS_PER_ONE_OFF = 365  # days like it rarer than one in this many days of history


def without_one_offs(y: np.ndarray, sellable: np.ndarray) -> np.ndarray:
    """``y`` with its one-off days (more than ONE_OFF_TIMES the 90th percentile of its sale
    days, on at most one day per DAYS_PER_ONE_OFF days of history) set to that percentile.

    >>> week = np.ones(120); week[100] = 201
    >>> float(without_one_offs(week, np.ones(120, bool))[100])
    1.0
    >>> lumpy = np.zeros(120); lumpy[::10] = 10; lumpy[5] = 300  # orders of 10, one of 300
    >>> cleaned = without_one_offs(lumpy, np.ones(120, bool))
    >>> float(cleaned[5]), float(cleaned[::10].sum())
    (10.0, 120.0)
    >>> again = np.ones(120); again[[30, 90]] = 200  # twice in four months: not a one-off
    >>> without_one_offs(again, np.ones(120, bool))[[30, 90]].tolist()
    [200.0, 200.0]
    """
    y = np.asarray(y, dtype=float)
    sizes = y[np.asarray(sellable, dtype=bool) & (y > 0)]
    if sizes.size < MIN_SALE_DAYS:
        return y
    big = float(np.quantile(sizes, BIG_DAY_QUANTILE))
    one_off = y > ONE_OFF_TIMES * big
    if not one_off.any() or one_off.sum() > max(1, math.floor(y.size / DAYS_PER_ONE_OFF)):
        return y
    return np.where(one_off, big, y)
