"""Shopify webhook verification, headers and the customer-data rules of the ingress.

Shopify signs the raw body with the app's client secret:
``X-Shopify-Hmac-Sha256 = base64(HMAC-SHA256(body, secret))``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import TypeAdapter, ValidationError

from connectors.shopify.payloads import Timestamp

TOPIC_HEADER = "x-shopify-topic"
HMAC_HEADER = "x-shopify-hmac-sha256"
SHOP_HEADER = "x-shopify-shop-domain"
WEBHOOK_ID_HEADER = "x-shopify-webhook-id"
EVENT_ID_HEADER = "x-shopify-event-id"
TRIGGERED_AT_HEADER = "x-shopify-triggered-at"
API_VERSION_HEADER = "x-shopify-api-version"

MAX_HEADER_CHARS = 255
# Shopify retries for up to 4 hours; a trigger time much older than the receipt is not one.
TRIGGER_WINDOW = timedelta(hours=48)
# A time this far past the receipt is the sender's clock running ahead, not the future.
CLOCK_SKEW = timedelta(minutes=5)
_TRIGGER = TypeAdapter(Timestamp)

PRIVACY_TOPICS = frozenset({"customers/data_request", "customers/redact", "shop/redact"})
CUSTOMER_PRIVACY_TOPICS = frozenset({"customers/data_request", "customers/redact"})


def trigger_time(header: str | None, received: datetime) -> datetime | None:
    """When Shopify triggered the event (``X-Shopify-Triggered-At``, sub-second, the same on
    every retry); None when the header is absent, unreadable, or outside what a delivery
    ``received`` then could carry.

    >>> from datetime import UTC
    >>> at = datetime(2026, 1, 1, 0, 0, 5, tzinfo=UTC)
    >>> trigger_time("2026-01-01T00:00:01.25Z", at).isoformat()
    '2026-01-01T00:00:01.250000+00:00'
    >>> trigger_time("2026-01-02T00:00:00Z", at) is None
    True
    """
    if not header:
        return None
    try:
        moment = _TRIGGER.validate_python(header)
    except ValidationError:
        return None
    return moment if received - TRIGGER_WINDOW <= moment <= received + CLOCK_SKEW else None


def lifecycle_moment(header: str | None, received: datetime) -> datetime:
    """When an install's lifecycle event (an uninstall, a shop's redact) happened, to order it
    against the shop's installs: its trigger time however old, never after ``received``.

    Unlike :func:`trigger_time`, an old trigger is believed: it can only place the event
    before a later install, where it changes nothing. Read as "now", a signed uninstall
    replayed with a trigger time days old disconnected a shop installed since, and its
    redact then erased it (an outside test).

    >>> from datetime import UTC
    >>> at = datetime(2026, 1, 5, tzinfo=UTC)
    >>> lifecycle_moment("2020-01-01T00:00:00Z", at).isoformat()
    '2020-01-01T00:00:00+00:00'
    >>> lifecycle_moment("2026-02-01T00:00:00Z", at) == lifecycle_moment(None, at) == at
    True
    """
    if not header:
        return received
    try:
        moment = _TRIGGER.validate_python(header)
    except ValidationError:
        return received
    return min(moment, received)


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
        """Read Shopify's headers (case-insensitively); None when a required one is missing or
        longer than any Shopify sends (they are stored, and they are not signed)."""
        lowered = {k.lower(): v for k, v in headers.items()}
        topic = lowered.get(TOPIC_HEADER, "").strip()
        shop = lowered.get(SHOP_HEADER, "").strip().lower()
        webhook_id = lowered.get(WEBHOOK_ID_HEADER, "").strip()
        # Older API versions do not send an event id; the webhook id is then the best dedupe key.
        event_id = lowered.get(EVENT_ID_HEADER, "").strip() or webhook_id
        triggered_at = lowered.get(TRIGGERED_AT_HEADER)
        api_version = lowered.get(API_VERSION_HEADER)
        if not topic or not shop or not event_id:
            return None
        values = (topic, shop, webhook_id, event_id, triggered_at or "", api_version or "")
        if any(len(v) > MAX_HEADER_CHARS for v in values):
            return None
        return cls(
            topic=topic,
            shop=shop,
            webhook_id=webhook_id,
            event_id=event_id,
            triggered_at=triggered_at,
            api_version=api_version,
        )


# Every topic a Shopify app can be subscribed to that we name anywhere: metrics label only these,
# so an unverified or made-up topic header can never grow the label set.
KNOWN_TOPICS = frozenset(
    {
        "orders/create",
        "orders/paid",
        "orders/updated",
        "orders/cancelled",
        "refunds/create",
        "inventory_levels/update",
        "inventory_levels/connect",
        "products/create",
        "products/update",
        "products/delete",
        "app/uninstalled",
        "bulk_operations/finish",
        *PRIVACY_TOPICS,
    }
)


def topic_label(topic: str | None) -> str:
    """``topic`` when it is one we know, else ``other``: a closed set for metrics labels."""
    return topic if topic in KNOWN_TOPICS else "other"


# Keys that hold customer data in Shopify payloads. A dead-lettered body is kept for an operator
# to inspect and replay, and it is kept without these.
PII_KEYS = frozenset(
    {
        "customer",
        "email",
        "contact_email",
        "phone",
        "billing_address",
        "shipping_address",
        "default_address",
        "addresses",
        "first_name",
        "last_name",
        "note",
        "note_attributes",
        "browser_ip",
        "client_details",
        "customer_locale",
        "landing_site",
        "referring_site",
        "cart_token",
        "checkout_token",
        "token",
        "device_id",
        "orders_requested",
        "data_request",
    }
)


def without_pii(value: Any) -> Any:
    """A copy of a parsed JSON value with every :data:`PII_KEYS` entry removed, at any depth.

    Iterative, so a hostile, deeply nested body cannot exhaust the stack. NUL characters,
    which PostgreSQL cannot store, are spelled out.

    >>> without_pii({"id": 1, "customer": {"email": "a@b"}, "line_items": [{"email": "x"}]})
    {'id': 1, 'line_items': [{}]}
    """
    root: list[Any] = [None]
    stack: list[tuple[Any, Any, Any]] = [(value, root, 0)]
    while stack:
        node, parent, slot = stack.pop()
        if isinstance(node, Mapping):
            copy: dict[str, Any] = {}
            parent[slot] = copy
            for key, child in node.items():
                if key not in PII_KEYS:
                    key = _storable(key)
                    copy[key] = None  # keeps the body's key order
                    stack.append((child, copy, key))
        elif isinstance(node, list):
            items: list[Any] = [None] * len(node)
            parent[slot] = items
            stack.extend((child, items, i) for i, child in enumerate(node))
        else:
            parent[slot] = _storable(node) if isinstance(node, str) else node
    return root[0]


def _storable(text: str) -> str:
    # PostgreSQL cannot store NUL in text or jsonb.
    return text.replace("\x00", "\\u0000")
