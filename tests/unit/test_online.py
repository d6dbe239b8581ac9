from __future__ import annotations

import math
from datetime import date, timedelta

import numpy as np
import pytest

from models.combined import Baseline, confidence, live_forecast
from models.forecast import Forecast
from models.online import OnlineDemandModel, nowcast

MONDAY = date(2026, 1, 5)


def trained(days: int, units: float = 6.0) -> OnlineDemandModel:
    model = OnlineDemandModel()
    for i in range(days):
        model.learn_day(MONDAY + timedelta(days=i), units)
    return model


def test_days_out_of_stock_teach_nothing() -> None:
    model = trained(60)
    before = model.forecast(MONDAY + timedelta(days=60), 7).mean
    for i in range(60, 75):
        model.learn_day(MONDAY + timedelta(days=i), 0.0, in_stock=False)
    after = model.forecast(MONDAY + timedelta(days=75), 7).mean
    assert np.allclose(before, after)
    assert model.days_learned == 60


def test_a_day_learned_twice_counts_once() -> None:
    once, twice = trained(40), trained(40)
    twice.learn_day(MONDAY + timedelta(days=39), 500.0)  # a replayed, late-corrected day
    first = MONDAY + timedelta(days=40)
    assert once.forecast(first, 90).mean.tolist() == twice.forecast(first, 90).mean.tolist()


def test_state_round_trips_through_bytes() -> None:
    model = trained(45)
    restored = OnlineDemandModel.from_bytes(model.to_bytes())
    first = MONDAY + timedelta(days=45)
    assert restored.forecast(first, 90).mean.tolist() == model.forecast(first, 90).mean.tolist()
    restored.learn_day(first, 12.0)
    model.learn_day(first, 12.0)
    assert restored.level() == model.level()
    assert len(model.to_bytes()) < 4096


def test_level_follows_a_step_change() -> None:
    model = trained(60, units=5.0)
    for i in range(60, 120):
        model.learn_day(MONDAY + timedelta(days=i), 15.0)
    mean = model.forecast(MONDAY + timedelta(days=120), 14).mean
    assert math.isclose(mean.mean(), 15.0, rel_tol=0.1), mean


def test_intervals_contain_the_mean() -> None:
    rng = np.random.default_rng(3)
    model = OnlineDemandModel()
    for i in range(200):
        model.learn_day(MONDAY + timedelta(days=i), float(rng.poisson(8)))
    forecast = model.forecast(MONDAY + timedelta(days=200), 90)
    assert (forecast.lower <= forecast.mean).all() and (forecast.mean <= forecast.upper).all()
    assert (forecast.upper - forecast.lower).mean() > 2  # Poisson(8) is not a point


def test_the_band_holds_the_forecast_while_the_level_catches_up() -> None:
    # A new SKU on a steady week: the level rises from its first day's units for weeks, so
    # every error is positive, and so would be the band's lower edge.
    model = OnlineDemandModel()
    for i in range(42):
        model.learn_day(MONDAY + timedelta(days=i), float([3, 4, 5, 6, 5, 4, 3][i % 7]))
    forecast = model.forecast(MONDAY + timedelta(days=42), 14)
    assert (forecast.lower <= forecast.mean).all() and (forecast.mean <= forecast.upper).all()


def test_nowcast_adds_the_rest_of_the_day() -> None:
    assert nowcast(10, 3, 0.75) == 5.5
    assert nowcast(10, 30, 1.0) == 30  # the day is over: what sold is the demand


def test_new_skus_get_a_low_confidence_moving_average() -> None:
    model = trained(10, units=4.0)
    live = live_forecast(model, None, MONDAY + timedelta(days=10), 90)
    assert live.method == "moving_average_7"
    assert confidence(live.method, None) == "low"
    assert np.allclose(live.forecast.mean, 4.0)


def test_the_nightly_blend_is_what_a_merchant_sees_once_there_is_one() -> None:
    model = trained(60, units=10.0)
    first = MONDAY + timedelta(days=60)
    assert live_forecast(model, None, first, 30).method == "river"
    flat = np.full(120, 20.0)
    baseline = Baseline(first - timedelta(days=1), flat, flat - 5, flat + 5)
    live = live_forecast(model, baseline, first, 30)
    assert live.method == "combined"
    # High only once the blend has beaten seasonal naive on the SKU's judged days.
    assert [confidence("combined", m) for m in (None, 0.7, 1.3)] == ["medium", "high", "medium"]
    # River is one of the blend's members, weighted at night: it does not move it again.
    assert np.allclose(live.forecast.mean, 20.0)
    assert isinstance(live.forecast, Forecast)
    # A run a few days old (tonight's not run yet, or failed) still serves, its last week
    # repeated past its end; an older one does not.
    weekly = np.tile(np.arange(1.0, 8.0), 13)[:90]
    days_old = Baseline(first - timedelta(days=3), weekly, weekly, weekly)
    served = live_forecast(model, days_old, first, 90).forecast.mean
    assert served[:87].tolist() == weekly[3:].tolist()
    assert served[87:].tolist() == np.resize(weekly[-7:], 3).tolist()
    stale = Baseline(first - timedelta(days=200), flat, flat, flat)
    assert live_forecast(model, stale, first, 30).method == "river"


def test_one_day_ahead_mase_of_a_steady_seller_is_one_over_root_two() -> None:
    # On white noise around a steady mean, the best forecast's error is the noise (σ) and
    # seasonal naive's is the difference of two noises (σ√2), so MASE tends to 1/√2 ≈ 0.707.
    rng = np.random.default_rng(11)
    model = OnlineDemandModel()
    for i in range(400):
        model.learn_day(MONDAY + timedelta(days=i), float(rng.poisson(20)))
    mase = model.mase()
    assert mase is not None and abs(mase - 1 / math.sqrt(2)) < 0.1, mase


def test_mase_waits_for_enough_scored_days() -> None:
    rng = np.random.default_rng(5)
    model = OnlineDemandModel()
    for i in range(40):
        model.learn_day(MONDAY + timedelta(days=i), float(rng.poisson(8)))
        # Scored from day 14 (the warm-up), reported once 14 days are scored: from day 27.
        assert (model.mase() is None) == (i < 27)
    assert OnlineDemandModel().mase() is None


def test_a_state_of_another_version_is_refused_so_it_gets_rebuilt() -> None:
    old = trained(30)
    old.version = 1
    with pytest.raises(ValueError):
        OnlineDemandModel.from_bytes(old.to_bytes())


def test_a_lumpy_seller_is_forecast_near_what_it_sells_on_average() -> None:
    # A wholesale order of 40 a month and nothing else: 1.33 a day. Factors learnt as units over
    # a level that decays between orders once fed each other into forecasts of hundreds a day.
    model = OnlineDemandModel()
    weekly_totals = []
    for i in range(400):
        model.learn_day(MONDAY + timedelta(days=i), 40.0 if i % 30 == 0 else 0.0)
        if i >= 200:
            weekly_totals.append(model.forecast(MONDAY + timedelta(days=i + 1), 7).mean.sum())
    assert max(weekly_totals) < 7 * 1.33 * 3, max(weekly_totals)
    assert 0.7 < np.mean(weekly_totals) / (7 * 40 / 30) < 1.3, np.mean(weekly_totals)


def test_the_weekday_profile_averages_one_so_a_week_is_seven_levels() -> None:
    model = OnlineDemandModel()
    for i in range(120):  # closed on Sundays, busy on Saturdays
        weekday = i % 7
        model.learn_day(
            MONDAY + timedelta(days=i), 0.0 if weekday == 6 else 12.0 if weekday == 5 else 6.0
        )
    profile = model.profile()
    assert math.isclose(sum(profile), 7.0)
    assert profile[6] < 0.05 and profile[5] > 1.5 * profile[0]
    week = model.forecast(MONDAY + timedelta(days=120), 7).mean
    assert math.isclose(week.sum(), 6 * 5 + 12, rel_tol=0.05), week


def test_a_weekday_the_shop_is_known_closed_on_does_not_flatten_the_others() -> None:
    # The nightly run does not teach River the days the shop was closed. A profile that waited
    # for all seven weekdays stayed flat for such a shop: no busy Saturday, ever.
    model = OnlineDemandModel()
    for i in range(17 * 7):
        weekday = i % 7
        model.learn_day(MONDAY + timedelta(days=i), 12.0 if weekday == 5 else 6.0, weekday != 6)
    profile = model.profile()
    assert math.isclose(sum(profile[:6]), 6.0) and profile[6] == 1.0
    week = model.forecast(MONDAY + timedelta(days=17 * 7), 7).mean
    assert np.allclose(week[:6], [6, 6, 6, 6, 6, 12], rtol=0.05), week


def test_one_big_old_order_does_not_come_back_every_week() -> None:
    """A new SKU whose first day, 40 days ago (a Wednesday), sold 1,000 units and the next 39
    days 111 was forecast 981 units every Wednesday, 12,846 over 90 days, with critical
    alerts to match (an outside test): River's mean had weighed the first day 20 times as
    much as any other."""
    today = date(2026, 12, 7)
    sold = {40: 1000.0, 10: 100.0, 2: 10.0}
    model = OnlineDemandModel()
    for ago in range(40, 0, -1):
        model.learn_day(today - timedelta(days=ago), sold.get(ago, 0.0))
    week = model.forecast(today, 7).mean
    assert week.sum() < 111, week  # under what the last 28 days sold
    # Three days that sold are little ground for a weekly profile: it counts in part (74 on
    # Wednesdays, 9 on Fridays and 0 otherwise, with all of it).
    assert week.max() < 50 and week.min() > 0, week
