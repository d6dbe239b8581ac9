"""The nightly forecaster: Prophet per SKU, refitted on the whole history each night.

Weekly seasonality always, yearly once there is a year of history, the shop country's public
holidays; days out of stock are missing values, not zero demand.
"""

from __future__ import annotations

import logging
from datetime import date, timedelta

import holidays
import numpy as np
import pandas as pd

from models.forecast import Forecast, Forecaster

logging.getLogger("cmdstanpy").disabled = True  # it logs every fit at INFO
logging.getLogger("prophet").setLevel(logging.WARNING)

YEARLY_AFTER_DAYS = 365


def holiday_frame(country: str | None, first: date, last: date) -> pd.DataFrame | None:
    if not country:
        return None
    try:
        calendar = holidays.country_holidays(country, years=range(first.year, last.year + 1))
    except NotImplementedError:
        return None
    rows = [(pd.Timestamp(d), name) for d, name in calendar.items()]
    return pd.DataFrame(rows, columns=["ds", "holiday"]) if rows else None


class ProphetForecaster(Forecaster):
    name = "prophet"

    def __init__(self, country: str | None = "US", uncertainty_samples: int = 100) -> None:
        self.country = country
        self.uncertainty_samples = uncertainty_samples
        self.fitted: np.ndarray | None = None  # in-sample predictions, for the online refinement

    def fit(
        self, y: np.ndarray, in_stock: np.ndarray | None = None, start: date | None = None
    ) -> None:
        from prophet import Prophet

        start = start or date(2020, 1, 1)
        dates = pd.date_range(start, periods=len(y), freq="D")
        values = np.asarray(y, dtype=float).copy()
        if in_stock is not None:
            values[~np.asarray(in_stock)] = np.nan
        frame = pd.DataFrame({"ds": dates, "y": values})
        self._model = Prophet(
            weekly_seasonality=True,
            yearly_seasonality=len(y) >= YEARLY_AFTER_DAYS,
            daily_seasonality=False,
            holidays=holiday_frame(self.country, start, start + timedelta(days=len(y) + 366)),
            interval_width=0.8,
            uncertainty_samples=self.uncertainty_samples,
        )
        self._model.fit(frame)
        self._last = dates[-1]
        self.fitted = self._model.predict(frame[["ds"]])["yhat"].to_numpy()

    def forecast(self, horizon: int) -> Forecast:
        future = pd.DataFrame(
            {"ds": pd.date_range(self._last + pd.Timedelta(days=1), periods=horizon, freq="D")}
        )
        predicted = self._model.predict(future)
        clip = lambda column: np.maximum(predicted[column].to_numpy(), 0)  # noqa: E731
        return Forecast(clip("yhat"), clip("yhat_lower"), clip("yhat_upper"))
