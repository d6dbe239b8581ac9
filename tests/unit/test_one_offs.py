"""A one-off order is not a weekly pattern: neither of its SKU nor of the shop's others."""

from __future__ import annotations

from datetime import date

import numpy as np

from models.members import fit_shop


def test_a_single_wholesale_order_is_no_weekday_that_sells_it_every_week() -> None:
    """1 a day and one order of 200, 20 days before: ETS forecast 68 units every Tuesday,
    River 27, the shop's share carried it to every SKU's Tuesday (32 for a 5-a-day SKU), and
    the merchant got a critical stockout alert and a reorder of 742 units (an outside test)."""
    rng = np.random.default_rng(1)
    days = 120
    wholesale = np.ones(days)
    wholesale[days - 20] += 200
    steady = rng.poisson(5, days).astype(float)
    every_day = np.ones(days, dtype=bool)
    fit = fit_shop([wholesale, steady], [every_day, every_day], date(2026, 12, 7), 14, None)
    for member, forecasts in fit.members.mean.items():
        if member == "lifecycle":  # launches only
            continue
        assert np.all(forecasts[0] < 1.5), (member, forecasts[0].round(2))
        assert np.all(forecasts[1] < 8), (member, forecasts[1].round(2))
