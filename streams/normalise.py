"""Turn a raw webhook envelope into per-SKU events (pure; no I/O).

Keys decide ownership: demand state belongs to a variant (``shop|<variant_id>``), stock levels to
an inventory item (``shop|inv:<inventory_item_id>``). Every event of one key lands on one
partition, so one worker owns that state at a time.

Only the signed body is trusted for what happened: cancellation comes from ``cancelled_at``,
never from the (unsigned) topic header. Ordering times come from the payload, clamped to the
moment Shopify triggered the event (or, without that header, the ingress received it) so that a
far-future timestamp cannot freeze a row. ``X-Shopify-Triggered-At`` also breaks ties between
payloads of the same whole second; Shopify keeps it on every retry for exactly that purpose.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, NamedTuple

from pydantic import ValidationError

from connectors.kafka.topics import SkuEvent, SkuEventKind, WebhookEnvelope, sku_key
from connectors.shopify.payloads import (
    MODELS,
    AppUninstalled,
    InventoryLevel,
    Order,
    Product,
    ProductDeleted,
    Refund,
    ShopifyPayload,
    ShopRedact,
)
from connectors.shopify.webhooks import CLOCK_SKEW, lifecycle_moment, trigger_time

# Restocked refund lines give the units back to the shelf, so they stop counting as demand.
# "no_restock" refunds (damaged goods, goodwill) leave the sale counted.
RESTOCK_TYPES = frozenset({"return", "cancel", "legacy_restock"})


class MalformedWebhook(ValueError):
    """An envelope that cannot be turned into events (it never will be: dead-letter it)."""


# Shopify stamps a body's times and its trigger header by one clock, and a change is made
# before the event it triggers: a second of slack, for times rounded to the second.
SAME_CLOCK_SLACK = timedelta(seconds=1)


def bounded(ts: datetime, anchor: datetime, slack: timedelta = CLOCK_SKEW) -> datetime:
    """``ts``, or the whole second of ``anchor`` (when the event was triggered or received)
    when ``ts`` lies further past it than ``slack``. A retry has the same trigger time, so it
    is bounded to the same version and cannot pass a real change that came after it. Whole
    seconds, as Shopify's own times are: a clamped time keeping its fraction would pass a
    genuine change stamped in the same second, whose trigger came later.

    >>> from datetime import UTC
    >>> now = datetime(2026, 1, 1, 0, 0, 7, 300000, tzinfo=UTC)
    >>> bounded(datetime(9999, 12, 31, tzinfo=UTC), now).isoformat()
    '2026-01-01T00:00:07+00:00'
    """
    return anchor.replace(microsecond=0) if ts > anchor + slack else ts


def triggered(env: WebhookEnvelope) -> datetime | None:
    """When Shopify triggered the event, by :func:`connectors.shopify.webhooks.trigger_time`.

    >>> from connectors.kafka.topics import WebhookEnvelope
    >>> env = WebhookEnvelope(topic="t", shop="s", event_id="e", webhook_id="w", payload={},
    ...     received_at="2026-01-01T00:00:05+00:00", triggered_at="2026-01-01T00:00:01.25Z")
    >>> triggered(env).isoformat()
    '2026-01-01T00:00:01.250000+00:00'
    """
    return trigger_time(env.triggered_at, datetime.fromisoformat(env.received_at))


class _Clock(NamedTuple):
    anchor: datetime  # when the event was triggered, else when it was received
    slack: timedelta
    trigger: str | None  # what events carry

    def bound(self, ts: datetime) -> datetime:
        return bounded(ts, self.anchor, self.slack)


def _clock(env: WebhookEnvelope) -> _Clock:
    """What the payload's times are bounded by, and the trigger time events carry.

    Against the trigger time, Shopify's own clock, a body's time gets a second of slack: a
    signed body stamped minutes ahead (within the skew allowed against our clock) had frozen
    its row, every genuine change in those minutes dropped as older (an outside test). Only
    without a trigger time is our clock the anchor, and its skew from Shopify's allowed."""
    trigger = triggered(env)
    if trigger is None:
        return _Clock(datetime.fromisoformat(env.received_at), CLOCK_SKEW, None)
    return _Clock(trigger, SAME_CLOCK_SLACK, trigger.isoformat())


class _Events:
    def __init__(self, env: WebhookEnvelope) -> None:
        self.env = env
        self.out: list[tuple[bytes, SkuEvent]] = []

    def add(self, ref: str, kind: SkuEventKind, data: dict[str, Any]) -> None:
        env = self.env
        event = SkuEvent(
            kind=kind,
            shop=env.shop,
            event_id=env.event_id,
            received_at=env.received_at,
            inbox_id=env.delivery_id,
            seq=len(self.out),
            data=data,
        )
        self.out.append((sku_key(env.shop, ref), event))


def _orders(env: WebhookEnvelope, order: Order, events: _Events) -> None:
    clock = _clock(env)
    trigger = clock.trigger
    cancelled = order.cancelled_at is not None
    ordered_at = clock.bound(order.created_at)
    # The order's updated_at versions all its lines: an edit's quantities replace older ones.
    version = clock.bound(order.updated_at or order.created_at)
    for li in order.line_items:
        if li.variant_id is None:
            continue  # custom items have no SKU to forecast
        data = {
            "line_item_id": li.id,
            "order_id": order.id,
            "variant_id": li.variant_id,
            "product_id": li.product_id,
            "sku": li.sku or None,
            "title": li.title,
            # What the line holds now: an edit lowers it, a removed line has 0.
            "quantity": li.current_quantity if li.current_quantity is not None else li.quantity,
            "ordered_quantity": li.quantity,
            "price": li.price,
            "ordered_at": ordered_at.isoformat(),
            "version": version.isoformat(),
            "triggered_at": trigger,
            "cancelled": cancelled,
            "test": order.test,
        }
        events.add(str(li.variant_id), "sale_line", data)


def _refund(env: WebhookEnvelope, refund: Refund, events: _Events) -> None:
    # One line item can appear in several refund lines of one refund (units restocked at two
    # locations). Refund lines are stored one per (refund, line item), so they are added up
    # here; storing each would keep only the first.
    merged: dict[int, tuple[int, bool, int | None]] = {}
    for rli in refund.refund_line_items:
        restocked = (
            rli.restock_type in RESTOCK_TYPES
            if rli.restock_type is not None
            else bool(refund.restock)
        )
        variant_id = rli.line_item.variant_id if rli.line_item is not None else None
        if rli.line_item_id in merged:
            quantity, was_restocked, known_variant = merged[rli.line_item_id]
            if was_restocked != restocked:
                # One row cannot say both; refused whole rather than half counted.
                raise MalformedWebhook(
                    f"refund {refund.id} both restocks and keeps units of line {rli.line_item_id}"
                )
            merged[rli.line_item_id] = (
                quantity + rli.quantity,
                restocked,
                known_variant if known_variant is not None else variant_id,
            )
        else:
            merged[rli.line_item_id] = (rli.quantity, restocked, variant_id)
    clock = _clock(env)
    trigger = clock.trigger
    # Bounded as an order's times are: 9999-12-31T23:59:59-14:00 was stored as a year-10000
    # time no Python reader can hold (an outside test).
    created_at = clock.bound(refund.created_at).isoformat() if refund.created_at else None
    for line_item_id, (quantity, restocked, variant_id) in merged.items():
        data = {
            "refund_id": refund.id,
            "line_item_id": line_item_id,
            "quantity": quantity,
            "restocked": restocked,
            "created_at": created_at,
            # Not read by the write path: it tells an uninstalled shop's worker whether the
            # refund was made before the uninstall (ledger._not_after_uninstall).
            "triggered_at": trigger,
        }
        # Without the variant the line's owner is unknown; the line item key still keeps every
        # refund of that line together, and the recount is correct wherever it runs.
        ref = str(variant_id) if variant_id is not None else f"line:{line_item_id}"
        events.add(ref, "refund_line", data)


def _inventory_level(env: WebhookEnvelope, level: InventoryLevel, events: _Events) -> None:
    clock = _clock(env)
    trigger = clock.trigger
    data = {
        "inventory_item_id": level.inventory_item_id,
        "location_id": level.location_id,
        "available": level.available,
        "updated_at": clock.bound(level.updated_at).isoformat(),
        "triggered_at": trigger,
    }
    events.add(f"inv:{level.inventory_item_id}", "stock", data)


def _product(env: WebhookEnvelope, product: Product, events: _Events) -> None:
    clock = _clock(env)
    trigger = clock.trigger
    # The product's timestamp orders whole payloads: a title change bumps it even when no
    # variant changed.
    updated_at = clock.bound(product.updated_at).isoformat()
    for v in product.variants:
        data = {
            "variant_id": v.id,
            "product_id": product.id,
            "sku": v.sku or None,
            "product_title": product.title,
            "variant_title": v.title,
            "inventory_item_id": v.inventory_item_id,
            "price": v.price,
            "tracked": v.inventory_management is not None,
            "updated_at": updated_at,
            "triggered_at": trigger,
        }
        events.add(str(v.id), "variant", data)


def read_payload(env: WebhookEnvelope) -> ShopifyPayload | None:
    """The envelope's payload as its topic's model; None for topics we do not use.

    The ingress validated it strictly; this reads our own output back, so lax mode is enough.
    """
    model = MODELS.get(env.topic)
    if model is None:
        return None
    try:
        return model.model_validate(env.payload, strict=False)  # type: ignore[return-value]
    except ValidationError as exc:
        raise MalformedWebhook(f"{env.topic}: {exc.error_count()} invalid field(s)") from exc


def normalise(env: WebhookEnvelope) -> list[tuple[bytes, SkuEvent]]:
    """The keyed per-SKU events a webhook implies (empty for topics we do not use)."""
    payload = read_payload(env)
    events = _Events(env)
    if isinstance(payload, Order):
        _orders(env, payload, events)
    elif isinstance(payload, Refund):
        _refund(env, payload, events)
    elif isinstance(payload, InventoryLevel):
        _inventory_level(env, payload, events)
    elif isinstance(payload, Product):
        _product(env, payload, events)
    elif isinstance(payload, ProductDeleted):
        events.add(
            f"product:{payload.id}",
            "product_delete",
            {"product_id": payload.id, "triggered_at": _clock(env).trigger},
        )
    elif isinstance(payload, AppUninstalled):
        if payload.myshopify_domain != env.shop:
            raise MalformedWebhook("app/uninstalled names another shop than its envelope")
        # Its moment orders it against a reinstall: a retry of an uninstall from before the
        # merchant installed again must not disconnect the shop.
        events.add("shop", "app_uninstalled", {"at": _lifecycle_moment(env)})
    elif isinstance(payload, ShopRedact):
        if payload.shop_domain != env.shop:
            raise MalformedWebhook("shop/redact names another shop than its envelope")
        # Its moment orders it against the uninstall it follows (connectors.db.ledger).
        events.add("shop", "shop_redact", {"at": _lifecycle_moment(env)})
    return events.out


def _lifecycle_moment(env: WebhookEnvelope) -> str:
    received = datetime.fromisoformat(env.received_at)
    return lifecycle_moment(env.triggered_at, received).isoformat()
