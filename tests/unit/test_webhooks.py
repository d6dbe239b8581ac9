from __future__ import annotations

import base64
import hashlib
import hmac

from connectors.shopify.webhooks import WebhookHeaders, project, sign, verify


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


def test_projection_keeps_what_features_need_and_drops_customer_data() -> None:
    order = {
        "id": 1,
        "created_at": "2026-01-01T00:00:00Z",
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
    kept = project("orders/create", order)
    assert kept == {
        "id": 1,
        "created_at": "2026-01-01T00:00:00Z",
        "test": False,
        "line_items": [{"id": 5, "variant_id": 6, "quantity": 2, "price": "1.00"}],
    }
    assert project("customers/redact", {"customer": {"email": "a@b.c"}}) is None
    assert project("orders/create", ["not", "an", "object"]) is None
