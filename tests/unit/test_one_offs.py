"""One SKU's events are not the shop's: a one-off order is no weekly pattern, and a SKU out of
stock or no longer selling does not take the others' forecasts down."""

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


def test_a_sku_out_of_stock_does_not_pull_the_others_down() -> None:
    """A three-SKU shop, one SKU out of stock for its last ten days and one that stopped
    selling three weeks ago: the shop's total fell with the zeros of both, and the top-down
    member forecast a 5-a-day SKU at 1.9 and falling to 1.1 within a week (an outside test).
    Days out of stock now count as what the SKU would have sold, and a SKU that stopped
    selling is out of the total, its own share none."""
    rng = np.random.default_rng(2)
    days = 120
    out = rng.poisson(4, days).astype(float)
    out[-10:] = 0
    stocked = np.ones(days, dtype=bool)
    stocked[-10:] = False
    steady = rng.poisson(5, days).astype(float)
    stopped = rng.poisson(5, days).astype(float)
    stopped[-21:] = 0
    every_day = np.ones(days, dtype=bool)
    units = [out, steady, stopped]
    fit = fit_shop(units, [stocked, every_day, every_day], date(2026, 12, 7), 7, None)
    shop = fit.members.mean["shop"]
    assert np.all(np.abs(shop[0] - 4) < 0.5) and np.all(np.abs(shop[1] - 5) < 0.5), shop.round(2)
    assert np.ptp(shop[1]) < 0.1, shop.round(2)  # no fall carried on
    assert np.all(shop[2] == 0), shop.round(2)


def test_a_one_off_in_the_validation_days_does_not_widen_the_band() -> None:
    """The nightly run and `forecast evaluate` set the members' validation forecasts against
    the SKU's units as the members learn them (``ShopFit.learnt``). Set against the order
    itself, every member erred by it: a 1-a-day product's band was 0-33 and its safety stock
    225 (an outside test)."""
    from datetime import timedelta

    from models.ensemble import ShopBlend, Validation

    days, last = 120, date(2026, 12, 6)
    wholesale = np.ones(days)
    wholesale[days - 20] += 200
    units = [wholesale, np.full(days, 5.0)]
    every_day = [np.ones(days, dtype=bool)] * 2
    before = fit_shop(
        [u[:-28] for u in units], [o[:-28] for o in every_day], last - timedelta(28), 28, None
    )
    fit = fit_shop(units, every_day, last, 28, None)

    def band(actual: list[np.ndarray]) -> tuple[float, float]:
        validations = [
            [Validation(before.blendable(i), actual[i][-28:], np.ones(28, dtype=bool))]
            for i in range(2)
        ]
        published = ShopBlend(fit.classes, validations).forecast(0, fit.blendable(0), None)
        return float(published.forecast.lower[0]), float(published.forecast.upper[0])

    assert band(units)[1] > 20  # what the orders as they were would make of it
    low, high = band(fit.learnt)
    assert low <= 1 <= high < 3, (low, high)
