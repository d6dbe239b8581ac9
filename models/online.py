"""The online forecaster: one small River model per SKU, learning each closed day as it comes.

Demand is a level times a weekday profile (retail demand scales, so the weekly rhythm is a
ratio, not an offset). Both come from exponentially weighted means (:class:`WeightedEWMean`,
River's statistics elsewhere): ``learn_day`` is a
few microseconds and ``forecast`` for 90 days well under a millisecond, so the stream can keep
a model per SKU up to date and ask it for a forecast after every order. Days out of stock are
skipped: they say nothing about demand.

The profile is each weekday's mean units over the mean of all seven, so it averages one and a
week's forecast is seven levels whatever the weekdays do (a weekday never taught, because the
caller knows the shop is closed then, is left out of that mean). A factor learnt as units over
the level instead is not held to that: on a lumpy seller (a wholesale order once a month) a big
day over a level decayed near zero makes a factor in the hundreds, the level is then divided
by it, and the two feed each other until forecasts swing between zero and a thousand times
what sells. Nor is the level any one day's units over its weekday's profile, which a big day
on a quiet weekday blows up. It is a ratio of two means over the same recent days: their
units, and the profile of the weekdays they fell on. A closed weekday adds nothing to either.

The profile counts in full only once days that sold pile up behind it (half at
PROFILE_EVIDENCE_DAYS): three orders on three weekdays are no weekly rhythm.

River's own ``HoltWinters`` is not used: it initialises its seasonal terms multiplicatively
even in additive mode and divides by the first week's level, which is zero for many new or
intermittent SKUs.

>>> from datetime import date, timedelta
>>> model = OnlineDemandModel()
>>> first = date(2026, 1, 5)  # a Monday
>>> for i in range(70):
...     model.learn_day(first + timedelta(days=i), 10.0 if i % 7 < 5 else 20.0)
>>> [round(x) for x in model.forecast(first + timedelta(days=70), 7).mean]
[10, 10, 10, 10, 10, 20, 20]
"""

from __future__ import annotations

import pickle
from datetime import date, timedelta

import numpy as np
from river import stats, utils

from models.accuracy import ACCURACY_AFTER_DAYS
from models.forecast import Forecast, Forecaster, interval_from_residuals

FADING = 0.05  # ≈ 20 days of memory for the level, ≈ 20 weeks for each weekday's mean
# A model learns at most the last two years: older days weigh under 1 % in the slowest of its
# means, and a backdated order touching every SKU (dated 2004, say) would otherwise have each
# model relearn decades, day by day: ahead of every message behind it in the stream, and every
# night in the nightly run's River member (3.5 minutes for 2,000 such SKUs, an outside test).
LEARN_DAYS = 730
WARMUP_DAYS = 14  # before two weeks, weekday profiles are noise: forecast the plain level
# A weekly profile counts in full only as days that sold pile up behind it: at this many, half.
PROFILE_EVIDENCE_DAYS = 5
FLOOR = 1e-3  # keeps ratios finite for SKUs that have not sold yet
INTERVAL_AFTER = 14
ACCURACY_FADING = 0.02  # ≈ 50 days: how the model has done lately, not since the SKU launched
# Stored states of another version are rebuilt from the demand history instead of loaded.
STATE_VERSION = 5


class WeightedEWMean:
    """An exponentially weighted mean in which the first value weighs what any later one
    does: the weighted sum over the sum of the weights. River's ``EWMean`` starts at its first
    value, which then weighs ``1 / fading`` times as much as the next: on a SKU whose first
    day sold 1,000 units and whose next 39 sold 111, that day still made 14 % of the mean, and
    as the first of six Wednesdays 77 % of theirs; 981 units were forecast every Wednesday
    (an outside test).

    >>> m = WeightedEWMean(0.5)
    >>> for x in (8.0, 0.0):
    ...     m.update(x)
    >>> round(m.get(), 3)  # (0.5 * 8 + 1 * 0) / (0.5 + 1)
    2.667
    """

    __slots__ = ("_sum", "_weight", "fading")

    def __init__(self, fading: float) -> None:
        self.fading = fading
        self._sum = 0.0
        self._weight = 0.0

    def update(self, x: float) -> None:
        self._sum += self.fading * (x - self._sum)
        self._weight += self.fading * (1.0 - self._weight)

    def get(self) -> float:
        return self._sum / self._weight if self._weight > 0 else 0.0

    def __getstate__(self) -> tuple[float, float, float]:
        return self.fading, self._sum, self._weight

    def __setstate__(self, state: tuple[float, float, float]) -> None:
        self.fading, self._sum, self._weight = state


class OnlineDemandModel:
    """Per-SKU online demand model (River statistics); pickles to a few hundred bytes."""

    def __init__(self, fading: float = FADING) -> None:
        self.units = WeightedEWMean(fading)
        self.days_profile = WeightedEWMean(fading)  # of the same days' weekdays
        self.weekday = [WeightedEWMean(fading) for _ in range(7)]  # units, by weekday
        self.weekday_days = [0] * 7
        self.sale_days = 0  # days learnt that sold: the weekly profile's evidence
        self.recent = utils.Rolling(stats.Mean, window_size=7)  # the low-history fallback
        self.error_low = stats.Quantile(0.10)
        self.error_high = stats.Quantile(0.90)
        self.days_learned = 0
        self.last_day: date | None = None
        self.last_sale: date | None = None
        # One-day-ahead accuracy as MASE: the model's absolute error over seasonal naive's (the
        # same weekday's last in-stock day), both weighted towards recent days.
        self.abs_error = stats.EWMean(fading_factor=ACCURACY_FADING)
        self.naive_abs_error = stats.EWMean(fading_factor=ACCURACY_FADING)
        self.last_by_weekday: list[float | None] = [None] * 7
        self.scored_days = 0
        self.version = STATE_VERSION

    def profile(self) -> list[float]:
        """Each weekday's units over the average learnt weekday's (Monday first); all ones
        until the warm-up is over or while nothing has sold. A weekday never learnt (the shop
        is closed then, and the caller said so) takes one: it must not flatten the others,
        and whoever knows the shop is closed then forecasts it at zero."""
        if self.days_learned < WARMUP_DAYS:
            return [1.0] * 7
        learnt = [i for i in range(7) if self.weekday_days[i]]
        means = {i: max(self.weekday[i].get(), 0.0) for i in learnt}
        average = sum(means.values()) / len(means)
        if average <= FLOOR:
            return [1.0] * 7
        # As sure as the days that sold behind it: one order of 1,000 on a Wednesday made a
        # profile with all of the week on Wednesdays, forecast every week (an outside test).
        sure = self.sale_days / (self.sale_days + PROFILE_EVIDENCE_DAYS)
        return [1.0 + sure * (means[i] / average - 1.0) if i in means else 1.0 for i in range(7)]

    def level(self) -> float:
        """Units on an average weekday lately."""
        units, weekdays = max(self.units.get() or 0.0, 0.0), self.days_profile.get() or 0.0
        return units / weekdays if weekdays > FLOOR else units

    def expected(self, day: date, profile: list[float] | None = None) -> float:
        return self.level() * (profile or self.profile())[day.weekday()]

    def learn_day(self, day: date, units: float, in_stock: bool = True) -> None:
        """Learn one closed day. Days must come oldest first; a day already learned is
        ignored, so replaying the history is harmless."""
        if self.last_day is not None and day <= self.last_day:
            return
        self.last_day = day
        if units > 0:
            self.last_sale = day
        if not in_stock:
            return
        profile = self.profile()
        if self.days_learned >= INTERVAL_AFTER:
            error = units - self.expected(day, profile)
            self.error_low.update(error)
            self.error_high.update(error)
            same_weekday = self.last_by_weekday[day.weekday()]
            if same_weekday is not None:
                self.abs_error.update(abs(error))
                self.naive_abs_error.update(abs(units - same_weekday))
                self.scored_days += 1
        self.last_by_weekday[day.weekday()] = units
        self.weekday[day.weekday()].update(units)
        self.weekday_days[day.weekday()] += 1
        self.units.update(units)
        self.days_profile.update(profile[day.weekday()])
        self.recent.update(units)
        self.days_learned += 1
        if units > 0:
            self.sale_days += 1

    def forecast(self, first: date, horizon: int) -> Forecast:
        """Expected units for ``horizon`` days from ``first``, with an 80 % interval."""
        week = np.array(self.profile()) * self.level()
        mean = week[(np.arange(horizon) + first.weekday()) % 7]
        if self.days_learned <= INTERVAL_AFTER:
            return interval_from_residuals(mean, np.array([]))
        low, high = self.error_low.get() or 0.0, self.error_high.get() or 0.0
        # A level still catching up (a new SKU's first weeks) errs on one side only: its error
        # quantiles would put the whole band above or below the forecast it is a band around.
        return Forecast(mean, np.clip(mean + low, 0, mean), np.maximum(mean + high, mean))

    def mase(self) -> float | None:
        """How the model has done lately at forecasting the next day, as MASE (below 1 beats
        seasonal naive); None until it has been scored on ACCURACY_AFTER_DAYS days."""
        scale = self.naive_abs_error.get()
        if self.scored_days < ACCURACY_AFTER_DAYS or scale <= 0:
            return None
        return float(self.abs_error.get() / scale)

    def recent_mean(self) -> float:
        """The mean of the last seven in-stock days: the fallback for new SKUs."""
        value = self.recent.get()  # type: ignore[operator]  # Rolling proxies Mean.get
        return float(value) if value else 0.0

    def to_bytes(self) -> bytes:
        return pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL)

    @staticmethod
    def from_bytes(blob: bytes) -> OnlineDemandModel:
        # Only ever our own worker's output, read back from our own database.
        model = pickle.loads(blob)
        if not isinstance(model, OnlineDemandModel):
            raise TypeError("not an online demand model")
        if getattr(model, "version", 1) != STATE_VERSION:
            raise ValueError("an online demand model of another version")
        return model


def nowcast(expected_today: float, sold_so_far: float, day_elapsed: float) -> float:
    """Today's demand from what sold so far plus what the rest of the day should bring.

    >>> nowcast(expected_today=10, sold_so_far=8, day_elapsed=0.5)
    13.0
    >>> nowcast(expected_today=10, sold_so_far=0, day_elapsed=0.0)
    10.0
    """
    remaining = min(max(1.0 - day_elapsed, 0.0), 1.0)
    return float(sold_so_far + expected_today * remaining)


class RiverForecaster(Forecaster):
    """The online model behind the backtest's forecaster contract."""

    name = "river"

    def fit(
        self, y: np.ndarray, in_stock: np.ndarray | None = None, start: date | None = None
    ) -> None:
        start = start or date(2020, 1, 1)
        self.model = OnlineDemandModel()
        for i, units in enumerate(np.asarray(y, dtype=float)):
            ok = True if in_stock is None else bool(in_stock[i])
            self.model.learn_day(start + timedelta(days=i), float(units), ok)
        self._next = start + timedelta(days=len(y))

    def forecast(self, horizon: int) -> Forecast:
        return self.model.forecast(self._next, horizon)
