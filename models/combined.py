"""The combined forecast: last night's Prophet baseline and the live River model, averaged.

Design. Prophet sees the whole history once a night (trend, yearly curve, holidays, the
weekly shape); the River model sees every closed day as it happens and follows the recent
level. Their errors differ in kind, and an equal-weight average of the two beats either alone
(the "forecast combination puzzle": estimated weights rarely beat equal ones, and per-SKU
weights fitted on 28 days of errors did not here). Between refits only the River half moves,
so the forecast follows the day's sales live; each night the Prophet half is replaced by the
new run's baseline, which re-anchors the combination on the full history.

SKUs with fewer than 30 days of history get the mean of their last seven in-stock days,
flagged low-confidence: neither model has anything to learn from yet.

>>> import numpy as np
>>> a = Forecast(np.array([2.0, 4.0]), np.array([1.0, 3.0]), np.array([3.0, 5.0]))
>>> b = Forecast(np.array([4.0, 4.0]), np.array([3.0, 3.0]), np.array([5.0, 5.0]))
>>> combine(a, b).mean.tolist()
[3.0, 4.0]
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np

from models.forecast import Forecast, Forecaster, MovingAverage, interval_from_residuals
from models.online import OnlineDemandModel, RiverForecaster
from models.prophet_forecaster import ProphetForecaster

LOW_HISTORY_DAYS = 30
HORIZON = 90
COMBINED_WEIGHT = 0.5  # of the nightly baseline; the online model has the rest


def combine(baseline: Forecast, online: Forecast) -> Forecast:
    w = COMBINED_WEIGHT
    return Forecast(
        w * baseline.mean + (1 - w) * online.mean,
        w * baseline.lower + (1 - w) * online.lower,
        w * baseline.upper + (1 - w) * online.upper,
    )


class CombinedForecaster(Forecaster):
    """The combination behind the backtest's forecaster contract."""

    name = "combined"

    def __init__(self, country: str | None = "US") -> None:
        self.country = country

    def fit(
        self, y: np.ndarray, in_stock: np.ndarray | None = None, start: date | None = None
    ) -> None:
        self._prophet = ProphetForecaster(self.country)
        self._prophet.fit(y, in_stock, start)
        self._river = RiverForecaster()
        self._river.fit(y, in_stock, start)

    def forecast(self, horizon: int) -> Forecast:
        return combine(self._prophet.forecast(horizon), self._river.forecast(horizon))


@dataclass(frozen=True)
class Baseline:
    """A nightly run's forecast for one SKU, from ``first_day`` on."""

    first_day: date
    mean: np.ndarray
    lower: np.ndarray
    upper: np.ndarray

    def window(self, first: date, horizon: int) -> Forecast | None:
        offset = (first - self.first_day).days
        if offset < 0 or offset + horizon > self.mean.size:
            return None
        cut = slice(offset, offset + horizon)
        return Forecast(self.mean[cut], self.lower[cut], self.upper[cut])


@dataclass(frozen=True)
class LiveForecast:
    first_day: date
    forecast: Forecast
    method: str  # "combined", "river" or "moving_average_7"
    confidence: str  # "high", "medium" or "low"


def live_forecast(
    model: OnlineDemandModel,
    baseline: Baseline | None,
    first: date,
    horizon: int = HORIZON,
) -> LiveForecast:
    """The forecast a merchant sees for ``horizon`` days from ``first``."""
    if model.days_learned < LOW_HISTORY_DAYS:
        # No residuals yet: the interval is Poisson-like around the recent mean.
        fallback = interval_from_residuals(np.full(horizon, model.recent_mean()), np.array([]))
        return LiveForecast(first, fallback, MovingAverage.name, "low")
    online = model.forecast(first, horizon)
    nightly = baseline.window(first, horizon) if baseline is not None else None
    if nightly is None:
        return LiveForecast(first, online, "river", "medium")
    return LiveForecast(first, combine(nightly, online), "combined", "high")
