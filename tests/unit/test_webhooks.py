from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

from connectors.shopify.payloads import (
    NotJson,
    PayloadRejected,
    ProductDeleted,
    UnreadablePayload,
    dump_payload,
    parse_payload,
)
from connectors.shopify.webhooks import (
    WebhookHeaders,
    sign,
    topic_label,
    verify,
    without_pii,
)


def test_signature_matches_shopifys_definition() -> None:
    body = b'{"id":1}'
    expected = base64.b64encode(hmac.new(b"s3cret", body, hashlib.sha256).digest()).decode()
    assert sign(body, b"s3cret") == expected


def test_verify_accepts_any_current_secret_and_rejects_the_rest() -> None:
    body = b'{"id":1}'
    assert verify(body, sign(body, b"new"), [b"new", b"old"])
    assert verify(body, sign(body, b"old"), [b"new", b"old"])
    assert not verify(body, sign(body, b"other"), [b"new", b"old"])
    assert not verify(body + b" ", sign(body, b"new"), [b"new"])
    assert not verify(body, None, [b"new"])
    assert not verify(body, "", [b"new"])
    assert not verify(body, "%%%not-base64", [b"new"])


def test_headers_are_read_case_insensitively_and_fall_back_to_webhook_id() -> None:
    parsed = WebhookHeaders.parse(
        {
            "x-shopify-topic": "orders/create",
            "X-SHOPIFY-SHOP-DOMAIN": "Shop.myshopify.com",
            "X-Shopify-Webhook-Id": "w1",
        }
    )
    assert parsed is not None
    assert parsed.shop == "shop.myshopify.com" and parsed.event_id == "w1"
    assert WebhookHeaders.parse({"X-Shopify-Topic": "orders/create"}) is None


def test_payload_models_keep_what_features_need_and_drop_customer_data() -> None:
    order = {
        "id": 1,
        "created_at": "2026-01-01T00:00:00Z",
        "updated_at": "2026-01-01T00:00:00Z",
        "test": False,
        "email": "a@b.c",
        "phone": "1",
        "customer": {"email": "a@b.c"},
        "shipping_address": {"name": "A"},
        "billing_address": {"name": "A"},
        "note": "call me",
        "browser_ip": "1.2.3.4",
        "line_items": [
            {
                "id": 5,
                "variant_id": 6,
                "quantity": 2,
                "price": "1.00",
                "properties": [{"name": "engraving", "value": "Jane"}],
            }
        ],
    }
    kept = dump_payload(parse_payload("orders/create", json.dumps(order).encode()))
    text = json.dumps(kept)
    for pii in ("a@b.c", "call me", "1.2.3.4", "Jane", "shipping_address", "phone"):
        assert pii not in text
    assert kept["id"] == 1 and kept["test"] is False
    assert kept["line_items"][0]["quantity"] == 2
    assert kept["line_items"][0]["price"] == "1.00"


@pytest.mark.parametrize(
    ("topic", "payload", "where"),
    [
        ("orders/create", {"line_items": [{"id": 2, "variant_id": 3, "quantity": 10**18}]}, "qu"),
        ("orders/create", {"line_items": [{"id": 2, "variant_id": 3, "quantity": "5"}]}, "qu"),
        ("orders/create", {"line_items": [{"id": 2, "variant_id": 3, "quantity": 2.7}]}, "qu"),
        ("orders/create", {"line_items": [{"id": 2, "variant_id": 3, "quantity": True}]}, "qu"),
        ("orders/create", {"line_items": [{"id": 2, "quantity": 1, "sku": 12345}]}, "sku"),
        ("orders/create", {"line_items": [None]}, "line_items.0"),
        ("orders/create", {"line_items": [5]}, "line_items.0"),
        ("orders/create", {"line_items": [{"id": -1, "quantity": 1}]}, "line_items.0.id"),
        ("orders/create", {"line_items": [{"quantity": 1}]}, "line_items.0.id"),
    ],
)
def test_payloads_with_wrong_types_or_absurd_ranges_are_rejected(
    topic: str, payload: dict, where: str
) -> None:
    at = "2026-01-01T00:00:00Z"
    body = {"id": 1, "created_at": at, "updated_at": at, **payload}
    with pytest.raises(PayloadRejected, match=where):
        parse_payload(topic, json.dumps(body).encode())


def test_a_line_whose_total_passes_the_column_once_rounded_to_cents_is_rejected() -> None:
    """99,999,999.9999 is stored as 100,000,000.00: a million of them is 10**14, past
    numeric(16, 2). Refused here, its reason reaches the dead letter; not at the database."""
    line = {"id": 2, "variant_id": 3, "quantity": 1_000_000, "price": "99999999.9999"}
    body = {
        "id": 1,
        "created_at": "2026-01-01T00:00:00Z",
        "updated_at": "2026-01-01T00:00:00Z",
        "line_items": [line],
    }
    with pytest.raises(PayloadRejected, match="line total"):
        parse_payload("orders/create", json.dumps(body).encode())
    line["price"] = "99999999.9949"  # stored as 99,999,999.99: fits
    parse_payload("orders/create", json.dumps(body).encode())


def test_a_refund_returning_more_of_a_line_than_any_line_holds_is_rejected() -> None:
    parts = [{"line_item_id": 7, "quantity": 1_000_000, "restock_type": "return"}] * 3
    body = {"id": 1, "order_id": 2, "refund_line_items": parts}
    with pytest.raises(PayloadRejected, match="more than 1000000 units of line 7"):
        parse_payload("refunds/create", json.dumps(body).encode())
    body["refund_line_items"] = [{**parts[0], "line_item_id": n} for n in (7, 8, 9)]
    parse_payload("refunds/create", json.dumps(body).encode())


@pytest.mark.parametrize(
    "updated_at", ["infinity", "2026-01-01T00:00:00", "1970-01-01T00:00:00Z", None, 5]
)
def test_inventory_levels_need_a_real_zoned_timestamp(updated_at: object) -> None:
    body = {"inventory_item_id": 1, "location_id": 2, "available": 3, "updated_at": updated_at}
    with pytest.raises(PayloadRejected, match="updated_at"):
        parse_payload("inventory_levels/update", json.dumps(body).encode())


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[" * 10_000 + b"]" * 10_000,
        b"{",
        # Not JSON on the wire, which is UTF-8 without a byte order mark (RFC 8259).
        b"\xef\xbb\xbf{}",
        '{"id": 1}'.encode("utf-16"),
    ],
)
def test_bodies_that_are_not_json_are_told_apart_from_bad_payloads(body: bytes) -> None:
    with pytest.raises(NotJson):
        parse_payload("orders/create", body)


def test_a_number_of_thousands_of_digits_is_json_this_app_cannot_read() -> None:
    with pytest.raises(UnreadablePayload):
        parse_payload("orders/create", b'{"id": ' + b"9" * 5000 + b"}")


def test_a_product_body_is_not_a_product_deletion() -> None:
    with pytest.raises(PayloadRejected):
        parse_payload("products/delete", json.dumps({"id": 1, "title": "Tee"}).encode())
    assert parse_payload("products/delete", b'{"id": 1}') == ProductDeleted(id=1)


def test_metrics_topic_labels_come_from_a_closed_set() -> None:
    assert topic_label("orders/create") == "orders/create"
    assert topic_label("x" * 30_000) == "other"
    assert topic_label(None) == "other"


def test_dead_letter_bodies_keep_no_customer_data_at_any_depth() -> None:
    deep: dict = {"email": "a@b.c", "id": 1}
    for _ in range(500):
        deep = {"nested": deep, "customer": {"name": "Jane"}}
    text = json.dumps(without_pii({"line_items": [deep], "note": "x\x00"}))
    assert "a@b.c" not in text and "Jane" not in text and '"id": 1' in text


def test_absurdly_long_unsigned_headers_are_refused() -> None:
    headers = {
        "X-Shopify-Topic": "orders/create",
        "X-Shopify-Shop-Domain": "s.myshopify.com",
        "X-Shopify-Webhook-Id": "w",
        "X-Shopify-Event-Id": "e",
    }
    assert WebhookHeaders.parse(headers) is not None
    assert WebhookHeaders.parse({**headers, "X-Shopify-Event-Id": "e" * 10_000}) is None
    assert WebhookHeaders.parse({**headers, "X-Shopify-Triggered-At": "t" * 10_000}) is None
