"""The year-end season, read from the shop's own last year.

The weekly members (ETS, Theta, Croston, TSB, the shop member, River) forecast from the last
weeks: none of them can know that December sells twice what November did, and Prophet's
smooth yearly curve, with one or two years to learn it from, flattens a three-week rush. So
from mid-November to early January, when the days to forecast or the weeks they are forecast
from fall in that season, each coming day is scaled by what the shop's total did last year:
the week around the same day a year before, over the weeks the forecast starts from, a year
before. "The same day" is the same weekday 52 weeks back, except where the season is pinned to
the calendar: Black Friday to Cyber Monday, and the week before, move with Black Friday (52 or
53 weeks after the last one: 52 weeks put a black-box shop's spike a week early, MASE 0.904
against 0.882); from 1 December the run-up to Christmas and the New Year keep their date.

Last year is only trusted as far as it has told the truth: over the past year, how much of
each four weeks' change against the four before it was the same change a year earlier (a
least-squares slope of the one on the other, from 0 to 1). A shop whose year repeats gets the
whole of last year's season; one whose changes last year were chance (one-off sales) gets
little of it. With two years behind it, a day's change counts only as far as both years made
it, so that one December's clearance sale is not taken for a rush every December; with one,
it cannot be told apart. Outside the season a forecast is left as it is: there the weekly
members follow the level and trend themselves, and correcting them by last year cost MASE on
11 of 12 synthetic shops (docs/forecasting-experiments.md).

A rush already under way is not counted twice. The factor says how each coming day compares
with the four weeks the forecast starts from; the weekly members start from where the shop
is now. When that is above those weeks' mean (a rush that began in mid-November), the
members carry that much of the rush already, and the factor is taken from where they start:
a black-box gift shop ramping five-fold from mid-November was forecast at twice its December
sales. Not the other way: after a peak, the members' starting level (the shop total's ETS
over the week ahead) is no steadier measure than the weeks before, and raising by it put a
synthetic shop's January 30 % high.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta

import numpy as np

YEAR = 364  # 52 weeks: the same weekday a year before
WINDOW = 28  # the weeks a forecast starts from, and the changes last year is judged on
AROUND = 3  # a day's level is the week around it, so its weekday does not count
MIN_CHECKS = 8  # past changes needed to judge last year by
BOUNDS = (0.25, 4.0)  # a year-ago ratio past these is a shop that barely sold, not a season
SEASON_FROM = (11, 15)  # Black Friday's week and the run-up to Christmas ...
SEASON_TO = (1, 10)  # ... to the first weeks of January, when sales fall back
BLACK_FRIDAY_WEEK = 7  # days before Black Friday that move with it ...
CYBER_WEEK = 5  # ... and after it, through the day after Cyber Monday
DATED_FROM = (12, 1)  # from here to SEASON_TO a day's counterpart is its calendar date


def in_season(day: date) -> bool:
    """
    >>> in_season(date(2026, 11, 27)), in_season(date(2027, 1, 4)), in_season(date(2026, 10, 1))
    (True, True, False)
    """
    return (day.month, day.day) >= SEASON_FROM or (day.month, day.day) <= SEASON_TO


def season_factor(
    total: np.ndarray,
    closed: np.ndarray,
    last_day: date,
    horizon: int,
    starting: Callable[[], float] | None = None,
) -> np.ndarray:
    """What each of the ``horizon`` days after ``last_day`` is scaled by: one outside the
    season, or without a year of history to judge last year by.

    ``total`` is the shop's units by day and ``closed`` its closed days, both ending on
    ``last_day``; ``starting``, asked only in the season, where the weekly members start
    from: the total's mean over the coming week as they forecast it."""
    ones = np.ones(horizon)
    days = total.size
    touched = [k for k in range(horizon) if in_season(last_day + timedelta(days=k + 1))]
    from_season = any(in_season(last_day - timedelta(days=k)) for k in range(WINDOW))
    if not touched and not from_season:
        return ones
    if days < YEAR + 2 * WINDOW + 7 * MIN_CHECKS:
        return ones
    level = _Level(total, ~closed)
    trust = _trust(level, days)
    if trust == 0:
        return ones
    carried = _carried(level, days, starting)
    factor = ones.copy()
    for k in range(horizon) if from_season else touched:
        years = [
            r
            for r in (_year_ago(level, days, k, last_day, back) for back in (1, 2))
            if r is not None
        ]
        if not years:
            continue
        # With two years, a change is trusted only as far as both made it: a clearance sale
        # one December is not a rush every December.
        ratio = years[0] if len(years) == 1 else _agreed(*years)
        factor[k] = float(np.clip(ratio * carried, *BOUNDS)) ** trust
    return factor


def _carried(level: _Level, days: int, starting: Callable[[], float] | None) -> float:
    """The share of the factor left once the members' start is taken out: the weeks the
    forecast starts from over where the members start, when they start above (one otherwise).

    >>> _carried(_Level(np.full(60, 10.0), np.ones(60, bool)), 60, lambda: 20.0)
    0.5
    >>> _carried(_Level(np.full(60, 10.0), np.ones(60, bool)), 60, lambda: 5.0)
    1.0
    """
    base = level.mean(days - WINDOW, days)
    start = starting() if starting is not None else None
    if not base or not start or start <= base:
        return 1.0
    return base / start


def black_friday(year: int) -> date:
    """The day after the fourth Thursday of November.

    >>> black_friday(2023), black_friday(2024)
    (datetime.date(2023, 11, 24), datetime.date(2024, 11, 29))
    """
    first = date(year, 11, 1)
    thursday = first + timedelta(days=(3 - first.weekday()) % 7 + 21)
    return thursday + timedelta(days=1)


def year_ago(day: date, back: int) -> date:
    """The day ``back`` years before that sold as ``day`` will: the same weekday 52 weeks
    before, except where the season is pinned to a date. Black Friday's week and the Cyber
    week after it move with Black Friday, which falls 52 or 53 weeks after the last; the run-up
    to Christmas and the New Year keep their calendar date, whatever the weekday.

    >>> year_ago(date(2024, 11, 29), 1), year_ago(date(2024, 12, 2), 1)  # BF, Cyber Monday
    (datetime.date(2023, 11, 24), datetime.date(2023, 11, 27))
    >>> year_ago(date(2024, 12, 20), 1), year_ago(date(2025, 1, 2), 1)
    (datetime.date(2023, 12, 20), datetime.date(2024, 1, 2))
    >>> year_ago(date(2024, 10, 4), 1)
    datetime.date(2023, 10, 6)
    """
    friday = black_friday(day.year)
    if -BLACK_FRIDAY_WEEK <= (day - friday).days < CYBER_WEEK:
        return black_friday(day.year - back) + (day - friday)
    if (day.month, day.day) >= DATED_FROM or (day.month, day.day) <= SEASON_TO:
        return day.replace(year=day.year - back)
    return day - timedelta(days=back * YEAR)


def _year_ago(level: _Level, days: int, k: int, last_day: date, back: int) -> float | None:
    """Coming day ``k``'s week ``back`` years before (:func:`year_ago`), over the weeks the
    forecast starts from at that time; None where that year had not sold or not happened
    yet. ``level`` ends on ``last_day``."""
    coming = last_day + timedelta(days=k + 1)
    then = days + k - (coming - year_ago(coming, back)).days
    # The weeks the forecast starts from are matched the same way, so that a base that held
    # last year's Black Friday is not set against one that has yet to reach this year's.
    start = days - (last_day - year_ago(last_day, back)).days
    if start - WINDOW < 0 or then - AROUND < 0 or then + AROUND >= days:
        return None
    base = level.mean(start - WINDOW, start)
    if not base:
        return None
    around = level.mean(then - AROUND, then + AROUND + 1)
    return float(np.clip(around / base, *BOUNDS)) if around else None


def _agreed(last: float, before: float) -> float:
    """The smaller of two years' changes if they went the same way, else none.

    >>> _agreed(2.0, 1.5), _agreed(0.5, 0.8), _agreed(1.6, 0.9)
    (1.5, 0.8, 1.0)
    """
    if (last - 1) * (before - 1) <= 0:
        return 1.0
    return min(last, before, key=lambda r: abs(np.log(r)))


class _Level:
    """Mean units over the open days of a span (None where too few were open)."""

    def __init__(self, total: np.ndarray, open_days: np.ndarray) -> None:
        self._sums = np.concatenate([[0.0], np.cumsum(np.where(open_days, total, 0.0))])
        self._counts = np.concatenate([[0], np.cumsum(open_days)])

    def mean(self, start: int, end: int) -> float | None:
        start = max(start, 0)
        count = int(self._counts[end] - self._counts[start])
        total = float(self._sums[end] - self._sums[start])
        return total / count if count >= AROUND and total > 0 else None


def _trust(level: _Level, days: int) -> float:
    """How much of each four weeks' change over the past year was the change a year earlier:
    the slope through zero of the log changes on last year's, held to 0–1."""
    now, then = [], []
    for start in range(YEAR + WINDOW, days - WINDOW + 1, 7):
        changes = []
        for at in (start, start - YEAR):
            before, after = level.mean(at - WINDOW, at), level.mean(at, at + WINDOW)
            changes.append(np.log(after / before) if before and after else None)
        if changes[0] is not None and changes[1] is not None:
            now.append(changes[0])
            then.append(changes[1])
    if len(now) < MIN_CHECKS:
        return 0.0
    x, y = np.array(then), np.array(now)
    spread = float(x @ x)
    return float(np.clip(x @ y / spread, 0.0, 1.0)) if spread > 0 else 0.0
