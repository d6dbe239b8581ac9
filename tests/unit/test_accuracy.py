from __future__ import annotations

import random

import pytest

from models.accuracy import bias, coverage, mase, seasonal_naive_scale, wape


def test_seasonal_naive_scores_exactly_one_on_its_own_history() -> None:
    rng = random.Random(3)
    history = [rng.randint(0, 20) for _ in range(70)]
    actual, naive = history[7:], history[:-7]
    assert mase(actual, naive, history, season=7) == pytest.approx(1.0)


def test_perfect_forecasts_score_zero() -> None:
    history = [1, 4, 2, 5, 3, 6, 2, 4, 1]
    assert mase([3, 4], [3, 4], history, season=2) == 0.0
    assert wape([3, 4], [3, 4]) == 0.0
    assert bias([3, 4], [3, 4]) == 0.0


def test_hand_computed_values() -> None:
    assert seasonal_naive_scale([5, 5, 7, 9], season=2) == 3.0
    assert mase([10, 10], [7, 13], [5, 5, 7, 9], season=2) == 1.0
    assert wape([5, 5, 10], [4, 7, 10]) == pytest.approx(3 / 20)
    assert bias([5, 5, 10], [4, 7, 10]) == pytest.approx(1 / 20)
    assert coverage([1, 2, 3, 4, 5], [0, 0, 0, 5, 5], [9, 9, 2, 9, 9]) == pytest.approx(0.6)


def test_zero_volume_and_flat_history_do_not_divide_by_zero() -> None:
    assert wape([0, 0], [0, 0]) == 0.0
    assert wape([0, 0], [1, 0]) == float("inf")
    assert mase([1], [1], [2] * 10) == 0.0
    assert mase([1], [2], [2] * 10) == float("inf")
    with pytest.raises(ValueError):
        mase([1], [1], [1, 2], season=7)
