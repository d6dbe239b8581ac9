"""Turn a raw webhook envelope into per-SKU events (pure; no I/O).

Keys decide ownership: demand state belongs to a variant (``shop|<variant_id>``), stock levels to
an inventory item (``shop|inv:<inventory_item_id>``). Every event of one key lands on one
partition, so one worker owns that state at a time.
"""

from __future__ import annotations

from typing import Any

from connectors.kafka.topics import SkuEvent, SkuEventKind, WebhookEnvelope, sku_key

# Restocked refund lines give the units back to the shelf, so they stop counting as demand.
# "no_restock" refunds (damaged goods, goodwill) leave the sale counted.
RESTOCK_TYPES = frozenset({"return", "cancel", "legacy_restock"})

ORDER_TOPICS = frozenset({"orders/create", "orders/updated", "orders/paid", "orders/cancelled"})


class MalformedWebhook(ValueError):
    """A webhook that passed the ingress but lacks what its topic needs."""


def _event(env: WebhookEnvelope, kind: SkuEventKind, data: dict[str, Any]) -> SkuEvent:
    return SkuEvent(
        kind=kind, shop=env.shop, event_id=env.event_id, received_at=env.received_at, data=data
    )


def _orders(env: WebhookEnvelope) -> list[tuple[bytes, SkuEvent]]:
    order = env.payload
    cancelled = env.topic == "orders/cancelled" or bool(order.get("cancelled_at"))
    out = []
    for li in order.get("line_items") or []:
        if li.get("variant_id") is None:
            continue  # custom items have no SKU to forecast
        data = {
            "line_item_id": int(li["id"]),
            "order_id": int(order["id"]),
            "variant_id": int(li["variant_id"]),
            "product_id": li.get("product_id"),
            "sku": li.get("sku") or None,
            "title": li.get("title"),
            "quantity": int(li.get("quantity") or 0),
            "price": str(li.get("price") or "0"),
            "ordered_at": order["created_at"],
            "cancelled": cancelled,
            "test": bool(order.get("test")),
        }
        out.append((sku_key(env.shop, str(data["variant_id"])), _event(env, "sale_line", data)))
    return out


def _refund(env: WebhookEnvelope) -> list[tuple[bytes, SkuEvent]]:
    refund = env.payload
    out = []
    for rli in refund.get("refund_line_items") or []:
        restock_type = rli.get("restock_type")
        restocked = (
            restock_type in RESTOCK_TYPES
            if restock_type is not None
            else bool(refund.get("restock"))
        )
        line_item = rli.get("line_item") or {}
        variant_id = line_item.get("variant_id")
        data = {
            "refund_id": int(refund["id"]),
            "line_item_id": int(rli["line_item_id"]),
            "quantity": int(rli.get("quantity") or 0),
            "restocked": restocked,
            "created_at": refund.get("created_at"),
        }
        # Without the variant the line's owner is unknown; the line item key still keeps every
        # refund of that line together, and the recount is correct wherever it runs.
        ref = str(variant_id) if variant_id is not None else f"line:{data['line_item_id']}"
        out.append((sku_key(env.shop, ref), _event(env, "refund_line", data)))
    return out


def _inventory_level(env: WebhookEnvelope) -> list[tuple[bytes, SkuEvent]]:
    p = env.payload
    updated_at = p.get("updated_at") or env.triggered_at
    if updated_at is None:
        raise MalformedWebhook("inventory level without updated_at")
    available = p.get("available")
    data = {
        "inventory_item_id": int(p["inventory_item_id"]),
        "location_id": int(p["location_id"]),
        "available": None if available is None else int(available),
        "updated_at": updated_at,
    }
    return [(sku_key(env.shop, f"inv:{data['inventory_item_id']}"), _event(env, "stock", data))]


def _product(env: WebhookEnvelope) -> list[tuple[bytes, SkuEvent]]:
    product = env.payload
    out = []
    for v in product.get("variants") or []:
        management = v.get("inventory_management", "shopify")
        data = {
            "variant_id": int(v["id"]),
            "product_id": int(product["id"]),
            "sku": v.get("sku") or None,
            "product_title": product.get("title"),
            "variant_title": v.get("title"),
            "inventory_item_id": v.get("inventory_item_id"),
            "price": str(v.get("price") or "0"),
            "tracked": management is not None,
            # The product's timestamp orders whole payloads: a title change bumps it even when
            # no variant changed.
            "updated_at": product.get("updated_at") or v.get("updated_at") or env.triggered_at,
        }
        out.append((sku_key(env.shop, str(data["variant_id"])), _event(env, "variant", data)))
    return out


def normalise(env: WebhookEnvelope) -> list[tuple[bytes, SkuEvent]]:
    """The keyed per-SKU events a webhook implies (empty for topics we do not use)."""
    try:
        if env.topic in ORDER_TOPICS:
            return _orders(env)
        if env.topic == "refunds/create":
            return _refund(env)
        if env.topic in ("inventory_levels/update", "inventory_levels/connect"):
            return _inventory_level(env)
        if env.topic in ("products/create", "products/update"):
            return _product(env)
        if env.topic == "products/delete":
            pid = int(env.payload["id"])
            return [
                (
                    sku_key(env.shop, f"product:{pid}"),
                    _event(env, "product_delete", {"product_id": pid}),
                )
            ]
        if env.topic == "shop/redact":
            return [(env.shop.encode(), _event(env, "shop_redact", {}))]
    except (KeyError, TypeError, ValueError) as exc:
        raise MalformedWebhook(f"{env.topic}: {exc!r}") from exc
    return []
