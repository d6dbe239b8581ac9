"""Shopify webhook verification and PII-free projection of payloads.

Shopify signs the raw body with the app's client secret:
``X-Shopify-Hmac-Sha256 = base64(HMAC-SHA256(body, secret))``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

TOPIC_HEADER = "x-shopify-topic"
HMAC_HEADER = "x-shopify-hmac-sha256"
SHOP_HEADER = "x-shopify-shop-domain"
WEBHOOK_ID_HEADER = "x-shopify-webhook-id"
EVENT_ID_HEADER = "x-shopify-event-id"
TRIGGERED_AT_HEADER = "x-shopify-triggered-at"
API_VERSION_HEADER = "x-shopify-api-version"

PRIVACY_TOPICS = frozenset({"customers/data_request", "customers/redact", "shop/redact"})


def sign(body: bytes, secret: bytes) -> str:
    """The header value Shopify would send for ``body``.

    >>> sign(b'{}', b'secret')
    'dzJZAsrKgS3CWXM6rNBGtzgXNyx3e42VtAJkdHRRbhM='
    """
    return base64.b64encode(hmac.new(secret, body, hashlib.sha256).digest()).decode()


def verify(body: bytes, header_value: str | None, secrets: Iterable[bytes]) -> bool:
    """True when ``header_value`` is a valid signature of ``body`` under any of ``secrets``.

    Every secret is tried even after a match so the time taken does not reveal which one matched.
    """
    if not header_value:
        return False
    try:
        given = base64.b64decode(header_value, validate=True)
    except (ValueError, TypeError):
        return False
    ok = False
    for secret in secrets:
        expected = hmac.new(secret, body, hashlib.sha256).digest()
        ok |= hmac.compare_digest(expected, given)
    return ok


@dataclass(frozen=True, slots=True)
class WebhookHeaders:
    topic: str
    shop: str
    webhook_id: str
    event_id: str
    triggered_at: str | None
    api_version: str | None

    @classmethod
    def parse(cls, headers: Mapping[str, str]) -> WebhookHeaders | None:
        """Read Shopify's headers (case-insensitively); None when a required one is missing."""
        lowered = {k.lower(): v for k, v in headers.items()}
        topic = lowered.get(TOPIC_HEADER, "").strip()
        shop = lowered.get(SHOP_HEADER, "").strip().lower()
        webhook_id = lowered.get(WEBHOOK_ID_HEADER, "").strip()
        # Older API versions do not send an event id; the webhook id is then the best dedupe key.
        event_id = lowered.get(EVENT_ID_HEADER, "").strip() or webhook_id
        if not topic or not shop or not event_id:
            return None
        return cls(
            topic=topic,
            shop=shop,
            webhook_id=webhook_id,
            event_id=event_id,
            triggered_at=lowered.get(TRIGGERED_AT_HEADER),
            api_version=lowered.get(API_VERSION_HEADER),
        )


# What each topic may keep. Anything not listed (customer, emails, addresses, phones, notes,
# browser details…) never leaves the ingress, so no PII reaches Kafka or PostgreSQL.
_LINE_ITEM_FIELDS = (
    "id",
    "variant_id",
    "product_id",
    "sku",
    "quantity",
    "price",
    "title",
    "variant_title",
    "name",
)
_ORDER_FIELDS = (
    "id",
    "created_at",
    "updated_at",
    "cancelled_at",
    "test",
    "location_id",
    "currency",
    "financial_status",
    "fulfillment_status",
)
_REFUND_FIELDS = ("id", "order_id", "created_at", "processed_at", "restock")
_REFUND_LINE_FIELDS = ("id", "line_item_id", "quantity", "restock_type", "location_id", "subtotal")
_INVENTORY_LEVEL_FIELDS = ("inventory_item_id", "location_id", "available", "updated_at")
_PRODUCT_FIELDS = ("id", "title", "status", "product_type", "vendor", "created_at", "updated_at")
_VARIANT_FIELDS = (
    "id",
    "product_id",
    "sku",
    "title",
    "price",
    "inventory_item_id",
    "inventory_management",
    "inventory_policy",
    "updated_at",
)


def _pick(source: Mapping[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    return {f: source[f] for f in fields if f in source}


def _order(payload: Mapping[str, Any]) -> dict[str, Any]:
    kept = _pick(payload, _ORDER_FIELDS)
    kept["line_items"] = [_pick(li, _LINE_ITEM_FIELDS) for li in payload.get("line_items") or []]
    return kept


def _refund(payload: Mapping[str, Any]) -> dict[str, Any]:
    kept = _pick(payload, _REFUND_FIELDS)
    lines = []
    for rli in payload.get("refund_line_items") or []:
        line = _pick(rli, _REFUND_LINE_FIELDS)
        if isinstance(rli.get("line_item"), Mapping):
            line["line_item"] = _pick(rli["line_item"], _LINE_ITEM_FIELDS)
        lines.append(line)
    kept["refund_line_items"] = lines
    return kept


def _product(payload: Mapping[str, Any]) -> dict[str, Any]:
    kept = _pick(payload, _PRODUCT_FIELDS)
    kept["variants"] = [_pick(v, _VARIANT_FIELDS) for v in payload.get("variants") or []]
    return kept


_PROJECTIONS = {
    "orders/create": _order,
    "orders/paid": _order,
    "orders/updated": _order,
    "orders/cancelled": _order,
    "refunds/create": _refund,
    "inventory_levels/update": lambda p: _pick(p, _INVENTORY_LEVEL_FIELDS),
    "inventory_levels/connect": lambda p: _pick(p, _INVENTORY_LEVEL_FIELDS),
    "products/create": _product,
    "products/update": _product,
    "products/delete": lambda p: _pick(p, ("id",)),
    "shop/redact": lambda p: _pick(p, ("shop_id", "shop_domain")),
    "app/uninstalled": lambda p: _pick(p, ("id", "myshopify_domain")),
}


def project(topic: str, payload: Any) -> dict[str, Any] | None:
    """The PII-free part of ``payload`` Stockpulse keeps, or None when the topic is not used.

    Customer privacy requests (``customers/data_request``, ``customers/redact``) project to None:
    we never store customer data, so there is nothing to hand over or erase.
    """
    projection = _PROJECTIONS.get(topic)
    if projection is None or not isinstance(payload, Mapping):
        return None
    return projection(payload)
