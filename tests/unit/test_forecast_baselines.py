from __future__ import annotations

import numpy as np
import pytest

from models.backtest import Score, backtest
from models.forecast import MovingAverage, SeasonalNaive, Series, fill_censored
from models.synthetic import as_series, generate


def test_seasonal_naive_is_exact_on_a_purely_weekly_series() -> None:
    weekly = np.array([2, 3, 4, 5, 8, 12, 9] * 20, dtype=float)
    summary = backtest([Series(weekly)], SeasonalNaive, horizon=14, folds=3).summary()
    assert summary["mase"] == 0.0 or np.isnan(summary["mase"])  # zero error (scale may be 0)
    assert summary["wape"] == 0.0 and summary["bias"] == 0.0 and summary["coverage"] == 1.0


def test_out_of_stock_zeros_are_not_learned_as_demand() -> None:
    y = np.array([5.0] * 21 + [0.0] * 7)
    in_stock = np.array([True] * 21 + [False] * 7)
    model = MovingAverage()
    model.fit(y, in_stock)
    assert model.forecast(3).mean.tolist() == [5.0, 5.0, 5.0]
    naive = SeasonalNaive()
    naive.fit(y, in_stock)
    assert naive.forecast(7).mean.tolist() == [5.0] * 7
    assert fill_censored(y, in_stock)[-1] == 5.0


def test_out_of_stock_days_are_not_scored() -> None:
    y = np.array([5.0] * 56)
    in_stock = np.ones(56, dtype=bool)
    y[-7:] = 0.0
    in_stock[-7:] = False  # the last test week sold nothing because nothing was there
    summary = backtest([Series(y, in_stock)], MovingAverage, horizon=14, folds=1).summary()
    assert summary["wape"] == 0.0


def test_intervals_are_ordered_and_non_negative() -> None:
    rng = np.random.default_rng(0)
    y = rng.poisson(3, size=120).astype(float)
    for model in (SeasonalNaive(), MovingAverage()):
        model.fit(y)
        f = model.forecast(90)
        assert len(f.mean) == 90
        assert (f.lower >= 0).all() and (f.lower <= f.mean).all() and (f.mean <= f.upper).all()


def test_backtest_on_synthetic_data_gives_sane_scores() -> None:
    data = [as_series(s) for s in generate(30, 400, seed=5)]
    for make in (SeasonalNaive, MovingAverage):
        score = backtest(data, make, horizon=28, folds=2)
        summary = score.summary()
        assert score.series > 20  # launches with short histories are skipped
        assert 0.3 < summary["mase"] < 3
        assert 0.5 < summary["coverage"] <= 1
        assert abs(summary["bias"]) < 0.5


def test_short_series_are_skipped() -> None:
    assert backtest([Series(np.ones(20))], MovingAverage, horizon=28, folds=4).series == 0
    with pytest.raises(ValueError):
        SeasonalNaive().fit(np.ones(3))


def test_a_young_series_gets_croston_and_tsb_forecasts_even_without_their_intervals() -> None:
    """Their conformal intervals need three horizons of history; asking for intervals left a
    young SKU without these members at all in `forecast evaluate`, unlike the nightly run, and
    scored the Croston peers on older SKUs only."""
    from models.members import INTERMITTENT_METHODS, fit_statistical

    rng = np.random.default_rng(4)
    young, old = rng.poisson(2, 40).astype(float), rng.poisson(2, 200).astype(float)
    fit = fit_statistical([young, old], 28, intervals=True)
    for name in INTERMITTENT_METHODS:
        assert np.isfinite(fit.mean[name]).all(), name
        assert np.isnan(fit.lower[name][0]).all() and np.isfinite(fit.lower[name][1]).all()
        nightly = fit_statistical([young, old], 28, [name])
        assert np.allclose(fit.mean[name], nightly.mean[name])


def test_coverage_counts_only_the_days_a_method_gave_an_interval_for() -> None:
    score = Score()
    actual, history = np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 2.0] * 7)
    nan = float("nan")
    score.add(actual, actual, np.array([0, 0, nan, nan]), np.array([5, 1, nan, nan]), history)
    assert score.summary()["coverage"] == 0.5 and score.summary()["scored"] == 1
