"""Alert rules, triggers and the digest clock (models/alerts.py), and signed links."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from connectors import links
from models.alerts import (
    ALL_RULES,
    Reading,
    Rule,
    Situation,
    Trigger,
    digest_day_due,
    headline,
    next_digest_at,
    read_rules,
    reorder_by,
    step,
)

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
DAY = timedelta(hours=24)


def situation(**changes: object) -> Situation:
    base = dict(
        stock=20,
        days_of_cover=30.0,
        reorder_point=10.0,
        overstock=False,
        dead_stock_days=None,
        lead_time_days=14,
        low_stock_threshold=5,
        stockout_within_days=7,
        overstock_days=180,
    )
    base.update(changes)
    return Situation(**base)  # type: ignore[arg-type]


def firing(s: Situation) -> set[str]:
    return {rule.value for rule, r in read_rules(s, ALL_RULES).items() if r.firing}


def test_each_rule_fires_on_its_own_line() -> None:
    assert firing(situation()) == set()
    assert firing(situation(stock=5, days_of_cover=20.0)) == {"low_stock", "reorder_point"}
    assert firing(situation(days_of_cover=7.0)) == {"stockout_soon", "stockout_before_reorder"}
    assert firing(situation(days_of_cover=13.9)) == {"stockout_before_reorder"}
    assert firing(situation(days_of_cover=None, overstock=True)) == {"overstock"}
    assert firing(situation(dead_stock_days=60)) == {"dead_stock"}


def test_untracked_stock_neither_fires_nor_re_arms() -> None:
    readings = read_rules(situation(stock=None, days_of_cover=None), ALL_RULES)
    assert all(not r.firing and not r.cleared for r in readings.values())


def test_no_threshold_and_no_reorder_point_ask_for_nothing() -> None:
    s = situation(stock=0, low_stock_threshold=None, reorder_point=0.0, days_of_cover=None)
    assert firing(s) == set()


@pytest.mark.parametrize(("stock", "cleared"), [(5, False), (6, False), (7, True)])
def test_low_stock_re_arms_only_a_margin_above_the_line(stock: int, cleared: bool) -> None:
    reading = read_rules(situation(stock=stock), [Rule.LOW_STOCK])[Rule.LOW_STOCK]
    assert reading.cleared is cleared


def test_cover_rules_re_arm_a_margin_above_their_line() -> None:
    soon = read_rules(situation(days_of_cover=8.0), [Rule.STOCKOUT_SOON])[Rule.STOCKOUT_SOON]
    assert (soon.firing, soon.cleared) == (False, False)  # 7 days + 20 % = 8.4
    soon = read_rules(situation(days_of_cover=8.4), [Rule.STOCKOUT_SOON])[Rule.STOCKOUT_SOON]
    assert soon.cleared
    lasting = read_rules(situation(days_of_cover=None), [Rule.STOCKOUT_SOON])
    assert lasting[Rule.STOCKOUT_SOON].cleared


def test_a_bouncing_condition_fires_once_per_crossing_and_cooldown() -> None:
    low, band, high = Reading(True, False), Reading(False, False), Reading(False, True)
    trigger, fired_count, now = Trigger(), 0, T0
    for i in range(40):  # 20 crossings within the hour, half of them re-arming
        now += timedelta(minutes=1)
        trigger, fired = step(trigger, low, now, DAY)
        fired_count += fired
        trigger, _ = step(trigger, high if i % 2 else band, now, DAY)
    assert fired_count == 1


def test_cooldown_and_re_arming_both_gate_a_second_alert() -> None:
    low, high = Reading(True, False), Reading(False, True)
    trigger, fired = step(Trigger(), low, T0, DAY)
    assert fired
    # Cooldown over, never re-armed: nothing.
    assert step(trigger, low, T0 + 2 * DAY, DAY)[1] is False
    # Re-armed within the cooldown, low again: held until the cooldown is over.
    trigger, _ = step(trigger, high, T0 + timedelta(hours=1), DAY)
    assert trigger.armed
    assert step(trigger, low, T0 + timedelta(hours=2), DAY)[1] is False
    later, fired = step(trigger, low, T0 + DAY, DAY)
    assert fired and not later.armed and later.last_fired_at == T0 + DAY


def test_a_zero_cooldown_fires_on_every_re_armed_crossing() -> None:
    low, high = Reading(True, False), Reading(False, True)
    trigger, _ = step(Trigger(), low, T0, timedelta(0))
    trigger, _ = step(trigger, high, T0, timedelta(0))
    assert step(trigger, low, T0, timedelta(0))[1]


NEW_YORK = ZoneInfo("America/New_York")


@pytest.mark.parametrize(
    ("utc", "due"),
    [
        # Fall back (1 Nov 2026): 08:00 EST is 13:00 UTC, the day before it was 12:00 UTC.
        (datetime(2026, 10, 31, 11, 59), None),
        (datetime(2026, 10, 31, 12, 0), date(2026, 10, 31)),
        (datetime(2026, 11, 1, 12, 30), None),
        (datetime(2026, 11, 1, 13, 0), date(2026, 11, 1)),
        # Spring forward (8 Mar 2026): 08:00 EDT is 12:00 UTC.
        (datetime(2026, 3, 8, 11, 59), None),
        (datetime(2026, 3, 8, 12, 0), date(2026, 3, 8)),
    ],
)
def test_the_digest_is_due_at_the_local_hour_whatever_the_offset(
    utc: datetime, due: date | None
) -> None:
    assert digest_day_due(utc.replace(tzinfo=UTC), NEW_YORK, 8) == due


def test_a_digest_hour_that_does_not_exist_that_day_is_due_right_after_the_gap() -> None:
    # 8 Mar 2026 in New York: 01:59 EST is followed by 03:00 EDT; there is no 02:00.
    assert digest_day_due(datetime(2026, 3, 8, 6, 59, tzinfo=UTC), NEW_YORK, 2) is None
    assert digest_day_due(datetime(2026, 3, 8, 7, 0, tzinfo=UTC), NEW_YORK, 2) == date(2026, 3, 8)
    at = next_digest_at(datetime(2026, 3, 8, 5, 0, tzinfo=UTC), NEW_YORK, 2)
    assert at.astimezone(UTC) == datetime(2026, 3, 8, 7, 0, tzinfo=UTC)


def test_next_digest_is_tomorrow_once_todays_hour_has_passed() -> None:
    at = next_digest_at(datetime(2026, 11, 1, 14, 0, tzinfo=UTC), NEW_YORK, 8)
    assert at.astimezone(UTC) == datetime(2026, 11, 2, 13, 0, tzinfo=UTC)


def test_reorder_by_is_the_lead_time_before_the_stockout_and_never_in_the_past() -> None:
    today = date(2026, 11, 23)
    assert reorder_by(today, date(2026, 12, 20), 14) == date(2026, 12, 6)
    assert reorder_by(today, date(2026, 11, 25), 14) == today
    assert reorder_by(today, None, 14) is None


def test_headlines_carry_the_numbers() -> None:
    figures = {
        "stock": 3,
        "low_stock_threshold": 5,
        "days_of_cover": 2.5,
        "stockout_date": "2026-11-25",
        "lead_time_days": 14,
        "stockout_within_days": 7,
        "reorder_point": 9.5,
        "overstock_days": 180,
        "dead_stock_days": 60,
    }
    assert "2.5 days of stock left (runs out 2026-11-25)" in headline(Rule.STOCKOUT_SOON, figures)
    assert "14-day lead time" in headline(Rule.STOCKOUT_BEFORE_REORDER, figures)
    assert headline(Rule.REORDER_POINT, figures) == "Stock 3 is at or below the reorder point 9.5."
    assert "no sale in 60+ days" in headline(Rule.DEAD_STOCK, figures)


def test_signed_links_refuse_tampering_and_other_purposes() -> None:
    token = links.sign("secret", links.UNSUBSCRIBE, ["a.myshopify.com", "ops@a.example"])
    assert links.verify("secret", links.UNSUBSCRIBE, token) == ["a.myshopify.com", "ops@a.example"]
    _, mac = token.split(".")
    forged = links.sign("secret", links.UNSUBSCRIBE, ["b.myshopify.com", "ops@a.example"])
    assert links.verify("secret", links.UNSUBSCRIBE, f"{forged.split('.')[0]}.{mac}") is None
    assert links.verify("secret", "reset", token) is None
    for junk in ("", ".", "a.b.c", "!!.??", token + "x", "x" * 5000):
        assert links.verify("secret", links.UNSUBSCRIBE, junk) is None


def test_a_product_that_never_sold_is_dead_stock_only_once_it_is_that_old() -> None:
    new = situation(dead_stock_days=90, days_known=10)
    assert read_rules(new, [Rule.DEAD_STOCK])[Rule.DEAD_STOCK].firing is False
    old = situation(dead_stock_days=90, days_known=95)
    assert read_rules(old, [Rule.DEAD_STOCK])[Rule.DEAD_STOCK].firing is True
