"""Touches of one SKU flushed together from the outbox make one message that says the most."""

from __future__ import annotations

from datetime import UTC, datetime

from streams.publish import merged


def test_a_removal_is_not_lost_behind_a_later_stock_change() -> None:
    early, late = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)
    removal = {
        "shop": "s",
        "variant_id": 1,
        "type": "removed",
        "event_ids": ["a"],
        "received_at": late,
    }
    stock = {
        "shop": "s",
        "variant_id": 1,
        "type": "stock",
        "event_ids": ["b", "a"],
        "received_at": early,
    }
    both = merged(removal, stock)
    assert both["type"] == "removed" and merged(stock, removal)["type"] == "removed"
    assert both["event_ids"] == ["a", "b"] and both["received_at"] == early
    sale = {**stock, "type": "demand", "received_at": None}
    assert merged(stock, sale)["type"] == "demand" and merged(sale, stock)["type"] == "demand"
    many = merged(
        {**stock, "event_ids": [str(i) for i in range(40)]},
        {**stock, "event_ids": [str(i) for i in range(40, 80)]},
    )
    assert many["event_ids"] == [str(i) for i in range(30, 80)]
