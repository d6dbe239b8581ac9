"""The year-end season from the shop's last year (models.season) and how the blend takes it."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np

from models.members import _total_forecast, prepare_shop, shop_total
from models.season import season_factor
from models.shop_calendar import closed_days

END = date(2026, 12, 3)


def _shop(
    days: int, december: float, seed: int, recurring: bool = True, sale_in: int | None = None
) -> np.ndarray:
    """A shop's daily totals ending on END: a gentle yearly wave, a weekly rhythm, and
    December's 1st–24th selling ``december`` times as much; without ``recurring``, the
    year's other changes are one-off sales at random, not the same each year. ``sale_in``:
    a clearance sale selling three times as much from 4 to 17 December of that year only."""
    rng = np.random.default_rng(seed)
    dates = [END - timedelta(days=days - 1 - i) for i in range(days)]
    doy = np.array([d.timetuple().tm_yday for d in dates])
    level = 40 * (1 + 0.3 * np.sin(2 * np.pi * doy / 365.25)) if recurring else np.full(days, 40.0)
    level = level * np.array([0.8, 0.9, 0.9, 1.0, 1.1, 1.4, 0.9])[[d.weekday() for d in dates]]
    if not recurring:
        for start in rng.integers(0, days - 10, days // 30):
            level[start : start + 7] *= rng.uniform(1.5, 2.5)
    level = np.where([d.month == 12 and d.day <= 24 for d in dates], level * december, level)
    sale = [d.year == sale_in and d.month == 12 and 4 <= d.day <= 17 for d in dates]
    level = np.where(sale, level * 3, level)
    return rng.poisson(level).astype(float)


def _factor(total: np.ndarray, last_day: date = END, horizon: int = 28) -> np.ndarray:
    return season_factor(total, closed_days(total), last_day, horizon)


def test_a_december_rush_last_year_is_forecast_again_from_the_start_of_december() -> None:
    total = _shop(3 * 365, december=2.0, seed=1)
    factor = _factor(total)
    rush, after = factor[5:20], factor[24:]  # December 9th–23rd, then the 28th onwards
    print(f"rush {rush.mean():.2f}, after Christmas {after.mean():.2f}")
    assert 1.6 < rush.mean() < 2.4
    assert 0.8 < after.mean() < 1.25


def test_black_friday_is_forecast_on_this_years_black_friday_not_52_weeks_after_the_last() -> None:
    """Black Friday fell on 24 November 2023 and falls on 29 November 2024, 53 weeks later:
    taking last year's week 52 weeks back put the spike a week early."""
    from models.season import black_friday

    end = date(2024, 11, 10)
    days = 2 * 365
    dates = [end - timedelta(days=days - 1 - i) for i in range(days)]
    rng = np.random.default_rng(5)
    level = np.array([40.0 * (1.6 if d.weekday() == 5 else 1.0) for d in dates])
    for i, d in enumerate(dates):
        offset = (d - black_friday(d.year)).days
        if 0 <= offset <= 3:  # Black Friday to Cyber Monday
            level[i] *= 3.0
    total = rng.poisson(level).astype(float)
    factor = _factor(total, end)
    day = {end + timedelta(days=k + 1): f for k, f in enumerate(factor)}
    cyber = [day[date(2024, 11, 29) + timedelta(days=k)] for k in range(4)]
    week_before = [day[date(2024, 11, 22) + timedelta(days=k)] for k in range(4)]
    print(
        f"Black Friday to Cyber Monday ×{np.mean(cyber):.2f},"
        f" the week before ×{np.mean(week_before):.2f}"
    )
    assert np.mean(cyber) > 1.8 and np.mean(week_before) < 1.3


def test_outside_the_year_end_season_a_forecast_is_left_as_it_is() -> None:
    total = _shop(3 * 365, december=2.0, seed=2)[:-90]  # ends in early September
    assert np.array_equal(_factor(total, END - timedelta(days=90)), np.ones(28))


def test_a_shop_without_a_year_to_judge_last_year_by_is_left_as_it_is() -> None:
    total = _shop(400, december=2.0, seed=3)
    assert np.array_equal(_factor(total), np.ones(28))


def test_a_year_of_one_off_sales_earns_less_trust_than_one_that_repeats() -> None:
    # Last December was no different; what changed last year were sales that did not recur.
    noisy = _factor(_shop(3 * 365, december=1.0, seed=4, recurring=False))
    repeating = _factor(_shop(3 * 365, december=2.0, seed=4))
    print(f"largest change: one-off sales {np.abs(np.log(noisy)).max():.3f}")
    assert np.abs(np.log(noisy)).max() < 0.15
    assert np.abs(np.log(repeating)).max() > 0.5


def test_a_clearance_sale_one_december_is_not_taken_for_a_rush_every_december() -> None:
    # END is 3 December 2026: last December had the sale, the one before did not.
    # The days to forecast are 4 to 31 December; the sale's fortnight is the first 14.
    with_sale = _factor(_shop(3 * 365, december=1.0, seed=6, sale_in=2025))[:14]
    without = _factor(_shop(3 * 365, december=1.0, seed=6))[:14]
    print(f"sale's days: {with_sale.mean():.2f} with the sale, {without.mean():.2f} without")
    assert abs(with_sale.mean() / without.mean() - 1) < 0.1
    # With one year behind it, the sale cannot be told from a rush: it is forecast again.
    one_year = _factor(_shop(2 * 365, december=1.0, seed=6, sale_in=2025))[:14]
    assert one_year.mean() > 1.3 * without.mean()


def test_the_blend_gets_the_season_on_the_weekly_members_and_prophet_keeps_its_own() -> None:
    total = _shop(3 * 365, december=2.0, seed=5)
    units = [total * 0.25, total * 0.75]
    fit = prepare_shop(units, [np.ones(total.size, bool)] * 2, END, 28, None)
    whole = shop_total(units, total.size)
    closed = closed_days(whole)
    starting = float(_total_forecast(whole, ~closed, 7).mean())
    expected = season_factor(whole, closed, END, 28, lambda: starting)
    assert np.allclose(fit.season, expected)
    fit.members.mean["prophet"][:] = 1.0
    members = fit.blendable(1)
    assert np.allclose(members["shop"], fit.members.mean["shop"][1] * fit.season)
    assert np.allclose(members["river"], fit.members.mean["river"][1] * fit.season)
    assert np.allclose(members["prophet"], 1.0)


def test_a_live_forecast_carries_the_season_from_today_not_from_the_run_day() -> None:
    from streams.forecasting import _season

    run = {"first_day": date(2026, 12, 1), "season": [1.0, 1.1, 1.2, 1.3, 1.4]}
    assert _season("combined", run, date(2026, 12, 3), 4) == [1.2, 1.3, 1.4, 1.0]
    assert _season("river", run, date(2026, 12, 3), 4) is None
    assert _season("combined", {**run, "season": None}, date(2026, 12, 3), 4) is None
    # Past the season's days in the run: nothing left to say.
    assert _season("combined", run, date(2026, 12, 6), 4) is None


def test_a_live_plan_in_the_rush_holds_safety_stock_for_the_rush_not_for_november() -> None:
    from models.policy import inventory_plan
    from streams.forecasting import _daily_sd, _season

    # A run of 1 December whose blend the season doubled from the 8th: the live plan made on
    # the 6th, with a week's lead time, reaches into the rush.
    run = {"first_day": date(2026, 12, 1), "season": [1.0] * 7 + [2.0] * 21, "spread": 1.5}
    season = _season("combined", run, date(2026, 12, 6), 28)
    assert season is not None and season[:3] == [1.0, 1.0, 2.0]
    mean = np.array([3.0, 3.0] + [6.0] * 26)
    band = mean + 2.0  # any band above zero: the shop is open every day

    def safety(days: list[float] | None) -> float:
        sd = _daily_sd("combined", run, mean, mean * 0, band, days)
        return inventory_plan(
            20,
            mean.tolist(),
            sd.tolist(),
            lead_time_days=7,
            service_level=0.95,
            target_cover_days=28,
            overstock_days=180,
            days_since_last_sale=1,
        ).safety_stock

    # A rush of twice the level is the same shop's demand doubled, its swings included: the
    # spread of the rush days doubles rather than growing with the square root of the mean.
    with_season, mean_only = safety(season), safety(None)
    assert with_season > 1.3 * mean_only, (with_season, mean_only)
    assert safety([1.0] * 28) == mean_only


def test_a_rush_under_way_at_the_origin_is_not_counted_twice() -> None:
    """A gift shop whose December rush builds from mid-November, five-fold by the 21st: on 3
    December the weekly members already start well above November's mean, and scaling them by
    the rush measured from that mean forecast twice the December sales (an outside test)."""
    rng = np.random.default_rng(9)
    days = 3 * 365
    dates = [END - timedelta(days=days - 1 - i) for i in range(days)]
    doy = np.array([d.timetuple().tm_yday for d in dates])
    ramp = 1 + 4 * np.clip((doy - 320) / 35, 0, 1) * (doy <= 355)
    level = 40 * np.where(doy > 355, 0.7, ramp)
    total = rng.poisson(level).astype(float)
    closed = closed_days(total)
    forecast = _total_forecast(total, ~closed, 28)  # the shop member's total, as fitted
    as_before = season_factor(total, closed, END, 28)
    now = season_factor(total, closed, END, 28, lambda: float(forecast[:7].mean()))
    truth = np.array(
        [40 * (1 + 4 * min(max((320 + 18 + k - 320) / 35, 0), 1)) for k in range(18)]
    )  # 4-21 December, day of year 338 onwards
    before_bias = (forecast[:18] * as_before[:18]).sum() / truth.sum() - 1
    now_bias = (forecast[:18] * now[:18]).sum() / truth.sum() - 1
    print(f"4-21 December: {before_bias:+.0%} before, {now_bias:+.0%} now")
    assert before_bias > 0.4 and abs(now_bias) < 0.2
    # A shop still at November's level at the origin keeps the whole season.
    flat = season_factor(total, closed, END, 28, lambda: 1.0)
    assert np.allclose(flat, as_before)
