"""Alert rules over a SKU's plan, their trigger (edge, hysteresis, cooldown) and the digest clock.

Plain values in, plain values out: the worker feeds each SKU's freshly computed plan through
:func:`read_rules` and :func:`step`, and stores the triggers; the sender asks
:func:`digest_day_due` whether a shop's daily digest is due.

An alert fires when its condition *becomes* true. It re-arms only once the condition has
cleared by a margin (20 % of the line, at least one unit or one day), so stock bouncing
around a threshold does not fire it again; and a product's rule stays quiet for a cooldown
after it fired (24 h by default), re-armed or not.

>>> from datetime import datetime, timedelta, UTC
>>> sku = Situation(stock=4, days_of_cover=3.0, reorder_point=9.0, overstock=False,
...                 dead_stock_days=None, lead_time_days=14, low_stock_threshold=5,
...                 stockout_within_days=7, overstock_days=180)
>>> reading = read_rules(sku, [Rule.LOW_STOCK])[Rule.LOW_STOCK]
>>> now = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
>>> trigger, fired = step(Trigger(), reading, now, timedelta(hours=24))
>>> fired, trigger.armed
(True, False)
>>> step(trigger, reading, now + timedelta(minutes=5), timedelta(hours=24))[1]
False
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta, tzinfo
from enum import StrEnum


class Rule(StrEnum):
    LOW_STOCK = "low_stock"
    """Available units at or below the low-stock threshold."""
    STOCKOUT_SOON = "stockout_soon"
    """The forecast runs the stock out within N days (7 by default)."""
    STOCKOUT_BEFORE_REORDER = "stockout_before_reorder"
    """Days of cover below the lead time: a reorder placed today arrives too late."""
    REORDER_POINT = "reorder_point"
    """Stock at or below the reorder point."""
    OVERSTOCK = "overstock"
    """More cover than the overstock line. Daily digest only."""
    DEAD_STOCK = "dead_stock"
    """Stock on hand and no sale for 30 days or more. Daily digest only."""


ALL_RULES: tuple[Rule, ...] = tuple(Rule)
DIGEST_ONLY: frozenset[Rule] = frozenset({Rule.OVERSTOCK, Rule.DEAD_STOCK})
SEVERITY: dict[Rule, str] = {
    Rule.STOCKOUT_BEFORE_REORDER: "critical",
    Rule.STOCKOUT_SOON: "critical",
    Rule.LOW_STOCK: "warning",
    Rule.REORDER_POINT: "warning",
    Rule.OVERSTOCK: "info",
    Rule.DEAD_STOCK: "info",
}
TITLES: dict[Rule, str] = {
    Rule.LOW_STOCK: "Low stock",
    Rule.STOCKOUT_SOON: "Stockout soon",
    Rule.STOCKOUT_BEFORE_REORDER: "Stockout before a reorder arrives",
    Rule.REORDER_POINT: "Reorder point reached",
    Rule.OVERSTOCK: "Overstock",
    Rule.DEAD_STOCK: "Dead stock",
}
# Hysteresis: a condition re-arms once it has cleared its line by this share of the line,
# and by at least one unit (stock rules) or one day (cover rules).
CLEAR_MARGIN = 0.2


@dataclass(frozen=True)
class Situation:
    """What the rules read of one SKU: its plan and the settings in force for it.

    ``days_of_cover`` None means the forecast never exhausts the stock within its horizon;
    ``stock`` None means no location tracks the SKU, and then no rule fires or re-arms.
    """

    stock: int | None
    days_of_cover: float | None
    reorder_point: float
    overstock: bool
    dead_stock_days: int | None
    lead_time_days: int
    low_stock_threshold: int | None
    stockout_within_days: int
    overstock_days: float
    # Days since the SKU first appeared (its first sale or its first sighting, whichever is
    # older); None when not looked up. A SKU never sold is dead stock only once it is this old.
    days_known: int | None = None


@dataclass(frozen=True)
class Reading:
    """One rule's condition now: ``firing`` when true; ``cleared`` once it is false by the
    margin, which re-arms a trigger that fired."""

    firing: bool
    cleared: bool


_UNKNOWN = Reading(firing=False, cleared=False)


def _margin(line: float, at_least: float) -> float:
    return max(at_least, CLEAR_MARGIN * abs(line))


def _at_or_below(value: float, line: float) -> Reading:
    return Reading(firing=value <= line, cleared=value > line + _margin(line, 1.0))


def _cover_below(cover: float | None, line: float, *, inclusive: bool) -> Reading:
    if cover is None:  # lasts beyond the horizon
        return Reading(firing=False, cleared=True)
    firing = cover <= line if inclusive else cover < line
    return Reading(firing=firing, cleared=cover >= line + _margin(line, 1.0))


def read_rules(situation: Situation, rules: Iterable[Rule]) -> dict[Rule, Reading]:
    """The condition of each of ``rules`` for a SKU.

    >>> sku = Situation(stock=6, days_of_cover=8.0, reorder_point=6.0, overstock=False,
    ...                 dead_stock_days=None, lead_time_days=10, low_stock_threshold=5,
    ...                 stockout_within_days=7, overstock_days=180)
    >>> {r.value: (x.firing, x.cleared) for r, x in read_rules(sku, ALL_RULES).items()}
    ... # doctest: +NORMALIZE_WHITESPACE
    {'low_stock': (False, False), 'stockout_soon': (False, False),
     'stockout_before_reorder': (True, False), 'reorder_point': (True, False),
     'overstock': (False, True), 'dead_stock': (False, True)}
    """
    s = situation
    out: dict[Rule, Reading] = {}
    for rule in rules:
        if s.stock is None:
            out[rule] = _UNKNOWN
        elif rule is Rule.LOW_STOCK:
            out[rule] = (
                _at_or_below(s.stock, s.low_stock_threshold)
                if s.low_stock_threshold is not None
                else Reading(firing=False, cleared=True)
            )
        elif rule is Rule.STOCKOUT_SOON:
            out[rule] = _cover_below(s.days_of_cover, s.stockout_within_days, inclusive=True)
        elif rule is Rule.STOCKOUT_BEFORE_REORDER:
            out[rule] = _cover_below(s.days_of_cover, s.lead_time_days, inclusive=False)
        elif rule is Rule.REORDER_POINT:
            # A reorder point of zero (no demand expected over the lead time) asks for nothing.
            if s.reorder_point <= 0:
                out[rule] = Reading(firing=False, cleared=True)
            else:
                out[rule] = _at_or_below(s.stock, s.reorder_point)
        elif rule is Rule.OVERSTOCK:
            out[rule] = Reading(
                firing=s.overstock,
                cleared=not s.overstock
                and s.days_of_cover is not None
                and s.days_of_cover <= s.overstock_days * (1 - CLEAR_MARGIN),
            )
        else:  # Rule.DEAD_STOCK
            dead = s.dead_stock_days is not None and (
                s.days_known is None or s.days_known >= s.dead_stock_days
            )
            out[rule] = Reading(firing=dead, cleared=s.dead_stock_days is None)
    return out


@dataclass(frozen=True)
class Trigger:
    """A rule's trigger on one SKU. A fresh trigger is armed and has never fired."""

    armed: bool = True
    last_fired_at: datetime | None = None


def step(
    trigger: Trigger, reading: Reading, now: datetime, cooldown: timedelta
) -> tuple[Trigger, bool]:
    """The trigger after ``reading`` at ``now``, and whether the alert fires.

    Fires when armed, the condition is true and the cooldown since the last firing has
    passed; firing disarms. A disarmed trigger re-arms when the condition has cleared.

    >>> from datetime import UTC
    >>> t0 = datetime(2026, 11, 1, tzinfo=UTC)
    >>> low, high = Reading(True, False), Reading(False, True)
    >>> t, fired = step(Trigger(), low, t0, timedelta(hours=24))
    >>> t, _ = step(t, high, t0 + timedelta(hours=1), timedelta(hours=24))  # re-armed
    >>> step(t, low, t0 + timedelta(hours=2), timedelta(hours=24))[1]  # in the cooldown
    False
    >>> step(t, low, t0 + timedelta(hours=25), timedelta(hours=24))[1]
    True
    """
    if reading.firing:
        cooled = trigger.last_fired_at is None or now - trigger.last_fired_at >= cooldown
        if trigger.armed and cooled:
            return Trigger(armed=False, last_fired_at=now), True
        return trigger, False
    if not trigger.armed and reading.cleared:
        return replace(trigger, armed=True), False
    return trigger, False


def reorder_by(today: date, stockout: date | None, lead_time_days: int) -> date | None:
    """The last day an order placed with the supplier arrives before the stock runs out: today
    when that day has already passed. None when no stockout is forecast.

    >>> reorder_by(date(2026, 11, 23), date(2026, 12, 20), 14)
    datetime.date(2026, 12, 6)
    >>> reorder_by(date(2026, 11, 23), date(2026, 11, 27), 14)
    datetime.date(2026, 11, 23)
    """
    if stockout is None:
        return None
    return max(today, stockout - timedelta(days=lead_time_days))


def headline(rule: Rule, figures: dict[str, object]) -> str:
    """One sentence saying what happened, from the figures an alert was raised on.

    >>> headline(Rule.LOW_STOCK, {"stock": 3, "low_stock_threshold": 5})
    'Stock is down to 3 units (low-stock line: 5).'
    """
    f = figures
    cover = f.get("days_of_cover")
    cover_text = f"{cover:g} days of stock left" if isinstance(cover, int | float) else "stock left"
    when = f" (runs out {f['stockout_date']})" if f.get("stockout_date") else ""
    if rule is Rule.LOW_STOCK:
        return f"Stock is down to {f['stock']} units (low-stock line: {f['low_stock_threshold']})."
    if rule is Rule.STOCKOUT_SOON:
        return f"Forecast to run out within {f['stockout_within_days']} days: {cover_text}{when}."
    if rule is Rule.STOCKOUT_BEFORE_REORDER:
        return (
            f"{cover_text.capitalize()}{when}, less than the {f['lead_time_days']}-day lead"
            " time: a reorder placed today arrives after the stockout."
        )
    if rule is Rule.REORDER_POINT:
        return f"Stock {f['stock']} is at or below the reorder point {f['reorder_point']:g}."
    if rule is Rule.OVERSTOCK:
        return (
            f"{f['stock']} units on hand cover more than {f['overstock_days']:g} days of demand."
            if cover is not None
            else f"{f['stock']} units on hand outlast the forecast: the demand it expects"
            " does not use them up."
        )
    return f"{f['stock']} units on hand and no sale in {f['dead_stock_days']}+ days."


def digest_day_due(now: datetime, zone: tzinfo, hour: int) -> date | None:
    """The shop-local day whose digest is due at ``now``: today once the local clock has
    reached ``hour``, else None. Wall-clock based, so it holds across DST changes: on a day
    the hour does not exist (clocks jump past it) the digest is due at the first instant after;
    on a day it exists twice, at the first (one digest per day is the caller's unique key).

    >>> from zoneinfo import ZoneInfo
    >>> from datetime import UTC
    >>> ny = ZoneInfo("America/New_York")
    >>> digest_day_due(datetime(2026, 11, 1, 12, 30, tzinfo=UTC), ny, 8)  # 07:30 EST
    >>> digest_day_due(datetime(2026, 11, 1, 13, 0, tzinfo=UTC), ny, 8)  # 08:00 EST
    datetime.date(2026, 11, 1)
    """
    local = now.astimezone(zone)
    return local.date() if local.hour >= hour else None


def digest_instant(day: date, zone: tzinfo, hour: int) -> datetime:
    """The instant ``day``'s digest is due (aware, in ``zone``): an alert after it waits for
    the next day's. A wall time inside a DST gap does not exist; the round trip moves it past
    the gap.

    >>> from zoneinfo import ZoneInfo
    >>> digest_instant(date(2026, 3, 8), ZoneInfo("America/New_York"), 2).isoformat()
    '2026-03-08T03:00:00-04:00'
    """
    wall = datetime(day.year, day.month, day.day, hour, tzinfo=zone)
    return wall.astimezone(UTC).astimezone(zone)


def next_digest_at(now: datetime, zone: tzinfo, hour: int) -> datetime:
    """When the next digest goes out (aware, in ``zone``), for the settings page."""
    local = now.astimezone(zone)
    for days in range(0, 3):
        at = digest_instant(local.date() + timedelta(days=days), zone, hour)
        if at > local:
            return at
    raise AssertionError("unreachable: a day has an hour")


def cover_days(value: float | None) -> float | None:
    """Days of cover as alerts show them: one decimal, never negative."""
    if value is None or math.isnan(value):
        return None
    return round(max(value, 0.0), 1)
