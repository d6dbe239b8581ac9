"""When a shop is closed: days its SKUs sold nothing although, by its recent days, that was
all but impossible, and which coming days will be closed too.

A closed day is not a day of zero demand: the forecasters learn nothing from it (it is
censored, like a day out of stock), and a coming day the shop will be closed on is forecast at
zero. A coming day is closed when the same weekday was closed three of the last four weeks
(a shutdown's weeks left out), when it is the public holiday the shop was closed on last
year, or when its date fell in a shutdown of ANNUAL_SHUTDOWN_DAYS or more in every year the
shop has behind it (one or two): the week between Christmas and New Year, a summer holiday.

>>> totals = np.array([9., 8, 0, 9, 7, 8, 9] * 5)  # closed every third weekday
>>> closed_days(totals).astype(int).tolist()[14:21]
[0, 0, 1, 0, 0, 0, 0]
>>> from datetime import date
>>> last = date(2026, 11, 1) + timedelta(days=totals.size - 1)
>>> future_closed(closed_days(totals), last, 7, None).astype(int).tolist()
[0, 0, 1, 0, 0, 0, 0]
"""

from __future__ import annotations

from datetime import date, timedelta

import holidays
import numpy as np

from models.forecast import SEASON

# A shop whose typical open day sells at least this much sells something on every open day: the
# chance of a Poisson zero is under 1 %. A quieter shop's empty day is just a quiet day.
CLOSED_LEVEL = 4.6
LEVEL_DAYS = 28
RECURRING_WEEKS = 4
RECURRING_CLOSED = 3
# Closed over a week in a row is a shutdown: it holds a day the shop opens on in any week.
# Shorter runs are its closed weekdays (six for a shop open on Saturdays only) or a long
# weekend, whose dates fall on other weekdays next year.
ANNUAL_SHUTDOWN_DAYS = 8


def closed_days(totals: np.ndarray) -> np.ndarray:
    """Which days of the shop's daily totals (all SKUs, oldest first) it was closed.

    An empty day is a closed one when the shop's typical day around it (the median over the
    weekdays it usually sells on, empty days included) makes an empty open day all but
    impossible. Not the mean of the days that sold: a small shop whose sales come in lumps (a
    wholesale order a month, a few units every third day) has a high mean on the days it
    sells, yet most of its days are empty and open.

    >>> lumpy = np.array([2., 0, 0] * 20); lumpy[::30] = 40
    >>> int(closed_days(lumpy).sum())
    0
    >>> saturdays_only = np.array([0., 0, 0, 0, 0, 30, 0] * 12)
    >>> closed_days(saturdays_only).astype(int).tolist()[-7:]
    [1, 1, 1, 1, 1, 0, 1]
    """
    totals = np.asarray(totals, dtype=float)
    closed = np.zeros(totals.size, dtype=bool)
    span = 2 * LEVEL_DAYS + 1
    for t in np.flatnonzero(totals == 0).tolist():
        # Days on either side; at the first or last weeks, as many on the one side there is, so
        # that a shop open one day a week still has its eight of them to judge by (with half,
        # its last fortnight was never found closed, and neither were its coming days).
        start = max(0, min(t - LEVEL_DAYS, totals.size - span))
        days = np.arange(start, min(totals.size, start + span))
        days = days[days != t]
        around, weekday = totals[days], days % SEASON
        selling = [w for w in range(SEASON) if np.mean(around[weekday == w] > 0) >= 0.5]
        typical = around[np.isin(weekday, selling)]
        if typical.size >= SEASON and np.median(typical) >= CLOSED_LEVEL:
            closed[t] = True
    return closed


def future_closed(
    closed: np.ndarray, last_day: date, horizon: int, country: str | None
) -> np.ndarray:
    """Which of the ``horizon`` days after ``last_day`` the shop will be closed, from its
    ``closed`` days (oldest first, ending on ``last_day``)."""
    out = np.zeros(horizon, dtype=bool)
    # A shutdown's days say nothing of the weekdays the shop closes on: counted, the three
    # weeks of a summer holiday ending on the last day had every coming day forecast closed
    # for four weeks after the shop reopened (an outside test: bias -25 % over four folds).
    # The weekdays are judged on the weeks around it.
    shutdown = _shutdowns(closed)
    for k in range(horizon):
        weekday = slice(SEASON - 1 - k % SEASON, None, SEASON)
        same = closed[::-1][weekday][~shutdown[::-1][weekday]][:RECURRING_WEEKS]
        if same.size == RECURRING_WEEKS and same.sum() >= RECURRING_CLOSED:
            out[k] = True
    if closed.any():
        out |= _annual_shutdown(closed, last_day, horizon)
    if country and closed.any():
        first_day = last_day - timedelta(days=closed.size - 1)
        try:
            calendar = holidays.country_holidays(
                country, years=range(first_day.year, last_day.year + 2)
            )
        except NotImplementedError:
            return out
        by_name: dict[str, list[date]] = {}
        for day, name in calendar.items():
            by_name.setdefault(name, []).append(day)
        for k in range(horizon):
            day = last_day + timedelta(days=k + 1)
            name = calendar.get(day)
            if name is None:
                continue
            last_year = [d for d in by_name.get(name, []) if d.year == day.year - 1]
            index = (last_year[0] - first_day).days if last_year else -1
            if 0 <= index < closed.size and closed[index]:
                out[k] = True
    return out


def _annual_shutdown(closed: np.ndarray, last_day: date, horizon: int) -> np.ndarray:
    """The coming days whose date fell in a shutdown in each of the (up to two) years before.

    >>> closed = np.zeros(400, dtype=bool)
    >>> last = date(2026, 12, 20)
    >>> first = last - timedelta(days=399)
    >>> closed[(date(2025, 12, 24) - first).days : (date(2026, 1, 2) - first).days] = True
    >>> ahead = _annual_shutdown(closed, last, 14)
    >>> [str(last + timedelta(days=int(k) + 1)) for k in np.flatnonzero(ahead)][::8]
    ['2026-12-24', '2027-01-01']
    >>> int(ahead.sum())  # 24 December to 1 January
    9
    """
    shutdown = _shutdowns(closed)
    first_day = last_day - timedelta(days=closed.size - 1)
    out = np.zeros(horizon, dtype=bool)
    for k in range(horizon):
        day = last_day + timedelta(days=k + 1)
        before = [_same_date(day, back) for back in (1, 2)]
        # Beyond a year ahead, a year back is still to come: not known.
        indices = [(d - first_day).days for d in before if first_day <= d <= last_day]
        out[k] = bool(indices) and all(shutdown[i] for i in indices)
    return out


def _shutdowns(closed: np.ndarray) -> np.ndarray:
    """The closed days in runs of ANNUAL_SHUTDOWN_DAYS or more.

    >>> _shutdowns(np.array([1, 1, 0] + [1] * 8 + [0], dtype=bool)).astype(int).tolist()
    [0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 0]
    """
    shutdown = np.zeros(closed.size, dtype=bool)
    start = 0
    for end in range(1, closed.size + 1):
        if end == closed.size or closed[end] != closed[start]:
            if closed[start] and end - start >= ANNUAL_SHUTDOWN_DAYS:
                shutdown[start:end] = True
            start = end
    return shutdown


def _same_date(day: date, years_back: int) -> date:
    try:
        return day.replace(year=day.year - years_back)
    except ValueError:  # 29 February
        return day.replace(year=day.year - years_back, day=28)
