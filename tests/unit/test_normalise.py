from __future__ import annotations

import pytest

from connectors.kafka.topics import WebhookEnvelope
from streams.normalise import MalformedWebhook, normalise


def envelope(topic: str, payload: dict) -> WebhookEnvelope:
    return WebhookEnvelope(
        topic=topic,
        shop="s.myshopify.com",
        event_id="e1",
        webhook_id="w1",
        received_at="2026-01-01T00:00:00+00:00",
        payload=payload,
    )


def test_order_lines_become_sale_events_keyed_by_variant() -> None:
    events = normalise(
        envelope(
            "orders/create",
            {
                "id": 10,
                "created_at": "2025-12-31T10:00:00Z",
                "updated_at": "2025-12-31T10:00:00Z",
                "test": False,
                "line_items": [
                    {"id": 1, "variant_id": 7, "quantity": 2, "price": "3.50", "sku": "A"},
                    {"id": 2, "variant_id": None, "quantity": 1, "price": "9"},
                ],  # custom
            },
        )
    )
    assert len(events) == 1
    key, event = events[0]
    assert key == b"s.myshopify.com|7"
    assert event.kind == "sale_line"
    assert event.data["line_item_id"] == 1 and event.data["quantity"] == 2
    assert event.data["cancelled"] is False


def test_cancelled_orders_mark_their_lines_cancelled() -> None:
    _, event = normalise(
        envelope(
            "orders/cancelled",
            {
                "id": 10,
                "created_at": "2025-12-31T10:00:00Z",
                "updated_at": "2025-12-31T10:00:00Z",
                "cancelled_at": "2026-01-02T00:00:00Z",
                "line_items": [{"id": 1, "variant_id": 7, "quantity": 2, "price": "3.50"}],
            },
        )
    )[0]
    assert event.data["cancelled"] is True


@pytest.mark.parametrize(
    ("restock_type", "restocked"),
    [("return", True), ("cancel", True), ("legacy_restock", True), ("no_restock", False)],
)
def test_only_restocked_refund_lines_give_demand_back(restock_type: str, restocked: bool) -> None:
    key, event = normalise(
        envelope(
            "refunds/create",
            {
                "id": 3,
                "order_id": 10,
                "refund_line_items": [
                    {
                        "line_item_id": 1,
                        "quantity": 1,
                        "restock_type": restock_type,
                        "line_item": {"variant_id": 7},
                    }
                ],
            },
        )
    )[0]
    assert key == b"s.myshopify.com|7"
    assert event.data["restocked"] is restocked


def test_inventory_levels_are_keyed_by_inventory_item_and_keep_untracked_as_none() -> None:
    key, event = normalise(
        envelope(
            "inventory_levels/update",
            {
                "inventory_item_id": 55,
                "location_id": 1,
                "available": None,
                "updated_at": "2026-01-01T00:00:00Z",
            },
        )
    )[0]
    assert key == b"s.myshopify.com|inv:55"
    assert event.data["available"] is None


def test_payloads_missing_required_fields_are_reported() -> None:
    with pytest.raises(MalformedWebhook):
        normalise(envelope("orders/create", {"line_items": [{"variant_id": 1}]}))


def test_cancellation_comes_from_the_signed_body_not_the_topic_header() -> None:
    order = {
        "id": 10,
        "created_at": "2025-12-31T10:00:00Z",
        "updated_at": "2025-12-31T10:00:00Z",
        "line_items": [{"id": 1, "variant_id": 7, "quantity": 2, "price": "3.50"}],
    }
    _, event = normalise(envelope("orders/cancelled", order))[0]
    assert event.data["cancelled"] is False


def test_far_future_times_are_clamped_to_when_the_webhook_arrived() -> None:
    received = "2026-01-01T00:00:00+00:00"
    ((_, stock),) = normalise(
        envelope(
            "inventory_levels/update",
            {
                "inventory_item_id": 55,
                "location_id": 1,
                "available": 3,
                "updated_at": "9999-12-31T23:59:59Z",
            },
        )
    )
    assert stock.data["updated_at"] == received
    ((_, sale),) = normalise(
        envelope(
            "orders/create",
            {
                "id": 10,
                "created_at": "2026-01-01T00:04:00Z",  # within clock skew: kept
                "updated_at": "2026-01-01T00:04:00Z",
                "line_items": [{"id": 1, "variant_id": 7, "quantity": 2, "price": "3.50"}],
            },
        )
    )
    assert sale.data["ordered_at"] == "2026-01-01T00:04:00+00:00"


def test_times_are_clamped_to_the_trigger_time_which_every_version_carries() -> None:
    """A retry has the same trigger time as the first delivery, so a far-future time is held
    to the same version whenever it is received; the trigger also orders one second's
    changes. A trigger the receipt could not have (from the future, or days old) is ignored."""
    level = {
        "inventory_item_id": 55,
        "location_id": 1,
        "available": 3,
        "updated_at": "9999-12-31T23:59:59Z",
    }
    triggered = "2025-12-31T23:59:58.125Z"
    for received in ("2026-01-01T00:00:00+00:00", "2026-01-01T03:00:00+00:00"):
        env = envelope("inventory_levels/update", level).model_copy(
            update={"triggered_at": triggered, "received_at": received}
        )
        ((_, stock),) = normalise(env)
        # The trigger's whole second: its fraction orders it among that second's changes.
        assert stock.data["updated_at"] == "2025-12-31T23:59:58+00:00"
        assert stock.data["triggered_at"] == "2025-12-31T23:59:58.125000+00:00"
    for unusable in ("2026-01-01T00:06:00Z", "2025-12-25T00:00:00Z", "yesterday", None):
        env = envelope("inventory_levels/update", level).model_copy(
            update={"triggered_at": unusable}
        )
        ((_, stock),) = normalise(env)
        assert stock.data["triggered_at"] is None
        assert stock.data["updated_at"] == "2026-01-01T00:00:00+00:00"  # the receipt


def test_a_shop_redaction_must_name_its_own_shop() -> None:
    with pytest.raises(MalformedWebhook):
        normalise(envelope("shop/redact", {"shop_id": 1, "shop_domain": "other.myshopify.com"}))
    ((_, event),) = normalise(
        envelope("shop/redact", {"shop_id": 1, "shop_domain": "s.myshopify.com"})
    )
    assert event.kind == "shop_redact"


def test_unused_topics_produce_nothing() -> None:
    assert normalise(envelope("collections/create", {"id": 1})) == []


def _refund_of_one_line(*parts: tuple[int, str]) -> WebhookEnvelope:
    return envelope(
        "refunds/create",
        {
            "id": 3,
            "order_id": 10,
            "refund_line_items": [
                {
                    "id": 30 + i,
                    "line_item_id": 1,
                    "quantity": quantity,
                    "restock_type": restock_type,
                    "location_id": i + 1,
                    "line_item": {"variant_id": 7},
                }
                for i, (quantity, restock_type) in enumerate(parts)
            ],
        },
    )


def test_one_line_refunded_in_two_parts_counts_both() -> None:
    """Units of one line restocked at two locations in one refund: stored one row per (refund,
    line item), so the parts are added up, not the first kept."""
    events = normalise(_refund_of_one_line((1, "return"), (2, "return")))
    assert len(events) == 1
    assert events[0][1].data["quantity"] == 3 and events[0][1].data["restocked"] is True


def test_one_line_both_restocked_and_kept_in_one_refund_is_refused() -> None:
    with pytest.raises(MalformedWebhook, match="both restocks and keeps"):
        normalise(_refund_of_one_line((1, "return"), (2, "no_restock")))


def test_an_uninstall_naming_another_shop_than_its_envelope_is_malformed() -> None:
    with pytest.raises(MalformedWebhook, match="another shop"):
        normalise(envelope("app/uninstalled", {"myshopify_domain": "other.myshopify.com"}))
    ((_, event),) = normalise(envelope("app/uninstalled", {"myshopify_domain": "s.myshopify.com"}))
    assert event.kind == "app_uninstalled"


def test_a_refund_dated_far_ahead_is_bounded_as_orders_are() -> None:
    """9999-12-31T23:59:59-14:00 was stored as a year-10000 time no Python reader can hold."""
    env = _refund_of_one_line((1, "return"))
    env = env.model_copy(
        update={"payload": {**env.payload, "created_at": "9999-12-31T23:59:59-14:00"}}
    )
    ((_, event),) = normalise(env)
    assert event.data["created_at"] == "2026-01-01T00:00:00+00:00"  # when it was received


def _level_stamped(updated_at: str, triggered_at: str | None) -> str:
    env = envelope(
        "inventory_levels/update",
        {"inventory_item_id": 5, "location_id": 6, "available": 1, "updated_at": updated_at},
    ).model_copy(update={"triggered_at": triggered_at})
    ((_, event),) = normalise(env)
    return str(event.data["updated_at"])


def test_a_body_stamped_after_its_own_trigger_time_is_bounded_by_it() -> None:
    """A signed level stamped 4 min 55 s ahead, within the skew allowed against our clock,
    froze its row: every genuine change in those minutes was dropped as older (an outside
    test). The body and the trigger header are stamped by one clock, Shopify's."""
    triggered = "2025-12-31T23:59:58.5Z"  # received at 2026-01-01T00:00:00Z
    assert _level_stamped("2026-01-01T00:04:55Z", triggered) == "2025-12-31T23:59:58+00:00"
    assert _level_stamped("2025-12-31T23:59:59Z", triggered) == "2025-12-31T23:59:59+00:00"
    # Without a trigger time only our clock is left, and Shopify's may run ahead of it.
    assert _level_stamped("2026-01-01T00:04:55Z", None) == "2026-01-01T00:04:55+00:00"
    assert _level_stamped("2026-01-01T00:05:01Z", None) == "2026-01-01T00:00:00+00:00"
