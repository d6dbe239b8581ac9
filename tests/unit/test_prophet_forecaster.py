from __future__ import annotations

from datetime import date

import numpy as np

from models.prophet_forecaster import ProphetForecaster, holiday_frame

WEEK = [2.0, 3.0, 4.0, 5.0, 8.0, 12.0, 9.0]


def test_prophet_treats_stockouts_as_missing_and_follows_the_week() -> None:
    rng = np.random.default_rng(1)
    days = 200
    y = np.array([WEEK[i % 7] for i in range(days)]) * 3 + rng.normal(0, 0.5, days)
    in_stock = np.ones(days, dtype=bool)
    in_stock[150:165] = False
    y[150:165] = 0.0  # nothing sold: the shelf was empty
    model = ProphetForecaster(country="US")
    model.fit(y, in_stock, start=date(2026, 1, 5))  # a Monday
    forecast = model.forecast(14)
    # The forecast starts the day after the last one: 200 days after a Monday is a Friday.
    expected = np.array([WEEK[(days + i) % 7] * 3 for i in range(14)])
    assert np.allclose(forecast.mean, expected, atol=2.0), forecast.mean.round(1)
    assert (forecast.lower <= forecast.mean).all() and (forecast.mean <= forecast.upper).all()


def test_holidays_come_from_the_shop_country() -> None:
    frame = holiday_frame("US", date(2026, 1, 1), date(2026, 12, 31))
    assert frame is not None
    assert "Independence Day" in set(frame["holiday"])
    assert holiday_frame(None, date(2026, 1, 1), date(2026, 12, 31)) is None
    assert holiday_frame("XX", date(2026, 1, 1), date(2026, 12, 31)) is None
