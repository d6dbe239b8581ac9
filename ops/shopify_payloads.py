"""Shopify-shaped webhook payloads and signed requests, as Shopify documents and sends them.

Shared by the store simulator, the benchmarks and the tests, so all three speak the same
protocol as the real thing: same headers, same HMAC, same field names.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from connectors.shopify.webhooks import sign


def iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class SignedWebhook:
    topic: str
    shop: str
    event_id: str
    body: bytes
    headers: dict[str, str]


def signed_webhook(
    topic: str,
    shop: str,
    payload: dict[str, Any],
    secret: str,
    *,
    event_id: str | None = None,
    api_version: str = "2025-10",
    triggered_at: datetime | None = None,
) -> SignedWebhook:
    """A webhook exactly as Shopify would POST it (redeliveries reuse the event id)."""
    body = json.dumps(payload, separators=(",", ":")).encode()
    event_id = event_id or str(uuid.uuid4())
    headers = {
        "Content-Type": "application/json",
        "X-Shopify-Topic": topic,
        "X-Shopify-Shop-Domain": shop,
        "X-Shopify-Hmac-Sha256": sign(body, secret.encode()),
        "X-Shopify-Webhook-Id": str(uuid.uuid4()),
        "X-Shopify-Event-Id": event_id,
        "X-Shopify-Triggered-At": iso(triggered_at or datetime.now(UTC)),
        "X-Shopify-API-Version": api_version,
    }
    return SignedWebhook(topic, shop, event_id, body, headers)


@dataclass
class Variant:
    variant_id: int
    product_id: int
    inventory_item_id: int
    sku: str
    title: str
    price: str


@dataclass
class Product:
    product_id: int
    title: str
    variants: list[Variant] = field(default_factory=list)


def product_payload(product: Product, updated_at: datetime) -> dict[str, Any]:
    return {
        "id": product.product_id,
        "title": product.title,
        "status": "active",
        "vendor": "Demo Goods",
        "product_type": "Goods",
        "created_at": iso(updated_at),
        "updated_at": iso(updated_at),
        "variants": [
            {
                "id": v.variant_id,
                "product_id": product.product_id,
                "title": v.title,
                "sku": v.sku,
                "price": v.price,
                "inventory_item_id": v.inventory_item_id,
                "inventory_management": "shopify",
                "inventory_policy": "deny",
                "updated_at": iso(updated_at),
            }
            for v in product.variants
        ],
    }


def inventory_level_payload(
    inventory_item_id: int, location_id: int, available: int | None, updated_at: datetime
) -> dict[str, Any]:
    return {
        "inventory_item_id": inventory_item_id,
        "location_id": location_id,
        "available": available,
        "updated_at": iso(updated_at),
        "admin_graphql_api_id": f"gid://shopify/InventoryLevel/{location_id}?inventory_item_id="
        f"{inventory_item_id}",
    }


def order_payload(
    order_id: int,
    created_at: datetime,
    lines: list[tuple[int, Variant, int]],
    *,
    cancelled_at: datetime | None = None,
    location_id: int | None = None,
    test: bool = False,
) -> dict[str, Any]:
    """An order with ``lines`` of (line_item_id, variant, quantity), customer data included
    because Shopify includes it: the ingress must strip it."""
    total = sum(float(v.price) * q for _, v, q in lines)
    return {
        "id": order_id,
        "name": f"#{order_id % 100000}",
        "created_at": iso(created_at),
        "updated_at": iso(cancelled_at or created_at),
        "cancelled_at": iso(cancelled_at) if cancelled_at else None,
        "cancel_reason": "customer" if cancelled_at else None,
        "test": test,
        "currency": "USD",
        "total_price": f"{total:.2f}",
        "financial_status": "paid",
        "location_id": location_id,
        "email": "jane.doe@example.com",
        "phone": "+15551234567",
        "customer": {
            "id": 9001,
            "email": "jane.doe@example.com",
            "first_name": "Jane",
            "last_name": "Doe",
            "phone": "+15551234567",
        },
        "billing_address": {"name": "Jane Doe", "address1": "1 Main St", "city": "Springfield"},
        "shipping_address": {"name": "Jane Doe", "address1": "1 Main St", "city": "Springfield"},
        "line_items": [
            {
                "id": line_item_id,
                "variant_id": v.variant_id,
                "product_id": v.product_id,
                "sku": v.sku,
                "title": v.title,
                "quantity": quantity,
                "price": v.price,
            }
            for line_item_id, v, quantity in lines
        ],
    }


def refund_payload(
    refund_id: int,
    order_id: int,
    created_at: datetime,
    lines: list[tuple[int, Variant, int]],
    *,
    restock_type: str = "return",
    location_id: int | None = None,
) -> dict[str, Any]:
    return {
        "id": refund_id,
        "order_id": order_id,
        "created_at": iso(created_at),
        "processed_at": iso(created_at),
        "note": "Customer Jane Doe returned it",
        "restock": restock_type != "no_restock",
        "refund_line_items": [
            {
                "id": refund_id * 10 + i,
                "line_item_id": line_item_id,
                "quantity": quantity,
                "restock_type": restock_type,
                "location_id": location_id,
                "subtotal": f"{float(v.price) * quantity:.2f}",
                "line_item": {
                    "id": line_item_id,
                    "variant_id": v.variant_id,
                    "product_id": v.product_id,
                    "sku": v.sku,
                    "quantity": quantity,
                    "price": v.price,
                },
            }
            for i, (line_item_id, v, quantity) in enumerate(lines)
        ],
    }
