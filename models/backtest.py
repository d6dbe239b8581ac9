"""Rolling-origin backtests: fit on everything before an origin, forecast the next horizon,
move the origin forward, repeat; score with MASE, RMSSE, WAPE, bias and 80 % interval
coverage. MASE and RMSSE are plain means over series × folds; the others are pooled.

Out-of-stock days in a test window are not scored: their zero sales understate demand.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from models.accuracy import mase, rmsse
from models.forecast import SEASON, Forecaster, Series


@dataclass
class Score:
    """Accumulates errors over many series and folds."""

    abs_error: float = 0.0
    signed_error: float = 0.0
    volume: float = 0.0
    inside: int = 0
    points: int = 0
    scaled_errors: list[float] = field(default_factory=list)
    fit_seconds: float = 0.0
    series: int = 0
    scaled_squared_errors: list[float] = field(default_factory=list)
    bounded: int = 0  # the points with an interval: a method may have none for a young series

    def add(
        self,
        actual: np.ndarray,
        mean: np.ndarray,
        lower: np.ndarray,
        upper: np.ndarray,
        history: np.ndarray,
    ) -> None:
        """One fold of one series: the scored days' actuals and forecasts, and the history
        before them that MASE and RMSSE are scaled by."""
        error = np.abs(actual - mean)
        self.abs_error += float(error.sum())
        self.signed_error += float((mean - actual).sum())
        self.volume += float(actual.sum())
        has_interval = np.isfinite(lower) & np.isfinite(upper)
        self.inside += int(((actual >= lower) & (actual <= upper) & has_interval).sum())
        self.bounded += int(has_interval.sum())
        self.points += int(actual.size)
        self.scaled_errors.append(mase(actual.tolist(), mean.tolist(), history.tolist(), SEASON))
        try:
            self.scaled_squared_errors.append(
                rmsse(actual.tolist(), mean.tolist(), history.tolist())
            )
        except ValueError:  # never sold before the origin: no scale
            pass

    def summary(self) -> dict[str, float]:
        finite = [x for x in self.scaled_errors if math.isfinite(x)]
        squared = [x for x in self.scaled_squared_errors if math.isfinite(x)]
        return {
            "mase": float(np.mean(finite)) if finite else float("nan"),
            "rmsse": float(np.mean(squared)) if squared else float("nan"),
            "wape": self.abs_error / self.volume if self.volume else float("nan"),
            "bias": self.signed_error / self.volume if self.volume else float("nan"),
            "coverage": self.inside / self.bounded if self.bounded else float("nan"),
            "fit_seconds_per_series": self.fit_seconds / self.series if self.series else 0.0,
            # Series × folds scored: every method should have the same, or it is not the
            # same test.
            "scored": len(self.scaled_errors),
        }


def min_length(horizon: int, folds: int) -> int:
    """The days a series needs for ``folds`` origins and a history of two weeks before them."""
    return horizon * folds + 2 * SEASON


def long_enough(length: int, horizon: int, folds: int) -> bool:
    return length >= min_length(horizon, folds)


def backtest(
    series: Iterable[Series],
    make: Callable[[], Forecaster],
    horizon: int,
    folds: int,
) -> Score:
    """Score the forecaster ``make()`` builds on every series that is long enough."""
    score = Score()
    for one in series:
        y = np.asarray(one.y, dtype=float)
        stock = np.ones(y.size, dtype=bool) if one.in_stock is None else np.asarray(one.in_stock)
        if not long_enough(y.size, horizon, folds):
            continue
        started = time.perf_counter()
        for k in range(folds):
            origin = y.size - horizon * (folds - k)
            train, test = y[:origin], y[origin : origin + horizon]
            ok = stock[origin : origin + horizon]
            if not ok.any():
                continue
            model = make()
            model.fit(train, stock[:origin], one.start)
            predicted = model.forecast(horizon)
            score.add(test[ok], predicted.mean[ok], predicted.lower[ok], predicted.upper[ok], train)
        score.fit_seconds += time.perf_counter() - started
        score.series += 1
    return score
