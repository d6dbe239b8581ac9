"""A shop's data read from Shopify's GraphQL bulk exports (catalogue, orders) and its locations,
applied through the same rules and idempotency keys as live webhooks.

Each exported object becomes the payload of the webhook that would have told us about it and
goes through :func:`streams.normalise.normalise` and the ledger: an order is an
``orders/updated`` (line item ids key its lines, its ``updatedAt`` versions them,
``currentQuantity`` is what they hold), each of its refunds a ``refunds/create``, a variant a
one-variant ``products/update`` (versioned by the product's ``updatedAt``), each of its levels
an ``inventory_levels/update``. So an export applied while webhooks for the same objects
arrive, or applied twice, counts everything once and never puts an older state over a newer
one. An object that can never be applied is set aside in dead letters, as live ones are.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from psycopg_pool import AsyncConnectionPool

from connectors.db import dead_letters, ledger, locations
from connectors.db.pool import DictConnection
from connectors.kafka.topics import SkuEvent, WebhookEnvelope
from connectors.shopify import bulk
from connectors.shopify.admin import AdminClient
from connectors.shopify.payloads import (
    BulkLevel,
    BulkLineItem,
    BulkOrder,
    BulkRefundLine,
    BulkVariant,
    ShopifyPayload,
    gid_number,
    inventory_item_of,
    variant_of,
)
from streams import poison
from streams.normalise import CLOCK_SKEW, normalise

log = logging.getLogger("stockpulse.exports")

BATCH_EVENTS = 2000

# Shopify's search syntax; ``{search}`` is e.g. ``created_at:>='2024-11-23'``.
ORDERS_EXPORT = """{{ orders(query: "{search}") {{ edges {{ node {{
  id createdAt updatedAt cancelledAt test
  lineItems {{ edges {{ node {{
    id quantity currentQuantity sku name variant {{ id }} product {{ id }}
    originalUnitPriceSet {{ shopMoney {{ amount }} }}
  }} }} }}
  refunds {{ id createdAt refundLineItems {{ edges {{ node {{
    lineItem {{ id }} quantity restockType
  }} }} }} }}
}} }} }} }}"""

CATALOGUE_EXPORT = """{ productVariants { edges { node {
  id sku title price updatedAt
  product { id title status updatedAt }
  inventoryItem { id tracked inventoryLevels { edges { node {
    location { id } quantities(names: ["available"]) { name quantity } updatedAt
  } } } }
} } } }"""

LOCATIONS_QUERY = (
    "query Locations($after: String) { locations(first: 250, after: $after,"
    " includeInactive: true) { nodes { id name isActive } pageInfo { hasNextPage endCursor } } }"
)

# A batch of events applied in one transaction: the ledger's own apply, or a caller's that
# also looks at what changed (reconciliation records its corrections there).
ApplyBatch = Callable[[DictConnection, Sequence[SkuEvent]], Awaitable[None]]
# Objects read so far, of how many (None until Shopify says).
Progress = Callable[[int, int | None], Awaitable[None]]


async def apply_plainly(conn: DictConnection, events: Sequence[SkuEvent]) -> None:
    if events:
        # What the Admin API lists is the shop's own, whoever a replayed body gave it to.
        await ledger.reclaim(conn, events[0].shop, events)
    await ledger.apply_events(conn, events)


@dataclass
class ExportCounts:
    roots: int = 0  # orders or variants read
    events: int = 0  # per-SKU events applied (sale lines, refund lines, variants, levels)
    rejected: int = 0  # objects or events set aside in dead letters


class _Sink:
    """Events gathered into batches, each applied in one transaction with poison isolation."""

    def __init__(
        self,
        pool: AsyncConnectionPool[DictConnection],
        counts: ExportCounts,
        apply: ApplyBatch,
        progress: Progress | None,
        total: int | None,
    ) -> None:
        self.pool = pool
        self.counts = counts
        self.apply = apply
        self.progress = progress
        self.total = total
        self.read = [0]  # export lines read, counted by the stitcher
        self.events: list[SkuEvent] = []

    async def flush_when_full(self) -> None:
        if len(self.events) >= BATCH_EVENTS:
            await self.flush()
            await self._report()

    async def finish(self) -> None:
        await self.flush()
        await self._report()

    async def _report(self) -> None:
        if self.progress:
            await self.progress(self.read[0], self.total)

    async def flush(self) -> None:
        events, self.events = self.events, []
        if not events:
            return

        async def apply(batch: Sequence[SkuEvent]) -> None:
            async with self.pool.connection() as conn, conn.transaction():
                await self.apply(conn, batch)

        async def set_aside(event: SkuEvent, error: BaseException) -> None:
            self.counts.rejected += 1
            async with self.pool.connection() as conn, conn.transaction():
                await ledger.dead_letter(conn, event, error)

        # An event the database refuses (an id of another shop's) is set aside like a live one.
        # A failure of the world (a deadlock with the worker applying webhooks for the same
        # SKUs, the database away) is retried, as the worker retries its batches: every write
        # is idempotent, so parts applied before it land once.
        await poison.retrying(
            "applying a backfill batch", lambda: poison.isolating(events, apply, set_aside)
        )
        self.counts.events += len(events)


def _events(
    shop: str, topic: str, event_id: str, received: str, payload: ShopifyPayload
) -> list[SkuEvent]:
    envelope = WebhookEnvelope(
        topic=topic,
        shop=shop,
        event_id=event_id,
        webhook_id="",
        received_at=received,
        payload=payload.model_dump(mode="json"),
    )
    return [event for _, event in normalise(envelope)]


async def _reject(
    pool: AsyncConnectionPool[DictConnection],
    shop: str,
    counts: ExportCounts,
    kind: str,
    root: dict[str, Any],
    children: list[dict[str, Any]],
    error: Exception,
) -> None:
    counts.rejected += 1
    async with pool.connection() as conn, conn.transaction():
        await dead_letters.record(
            conn,
            stage="backfill",
            shop=shop,
            event_id=str(root.get("id")),
            kind=kind,
            data={kind: root, "children": children},
            error=str(error)[:2000],
        )


@dataclass(frozen=True)
class Resume:
    """An orders export read before, partly: its result file and how many orders of it were
    applied."""

    operation_id: str
    url: str
    applied: int
    total: int | None


async def read_orders(
    pool: AsyncConnectionPool[DictConnection],
    client: AdminClient,
    http: httpx.AsyncClient,
    shop: str,
    search: str,
    *,
    event_prefix: str,
    apply: ApplyBatch = apply_plainly,
    resume: Resume | None = None,
    started: Callable[[str, str | None], Awaitable[None]] | None = None,
    progress: Progress | None = None,
    counts: ExportCounts | None = None,
) -> ExportCounts:
    """Export the orders matching ``search`` and apply them with their refunds.

    With ``resume``, the earlier export's file is read again (Shopify keeps it for 7 days)
    and its first ``applied`` orders are skipped; if the file is gone, a new export is read
    from the start. ``started(operation_id, url)`` is told which export is read.
    ``counts``, when given, is kept up to date as it goes."""
    if counts is None:
        counts = ExportCounts()
    if resume is not None:
        try:
            await _apply_orders(
                pool,
                http,
                shop,
                resume.url,
                resume.total,
                resume.applied,
                event_prefix,
                apply,
                progress,
                counts,
            )
            return counts
        except httpx.HTTPStatusError as exc:
            if counts.roots:
                raise  # failed part-way: the next resume starts from what was applied
            log.warning("the earlier export of %s is gone (%s); exporting again", shop, exc)
    operation = await bulk.run(client, ORDERS_EXPORT.format(search=search))
    if started is not None:
        await started(operation["id"], operation.get("url"))
    total = int(operation.get("objectCount") or 0) or None
    if operation.get("url"):
        await _apply_orders(
            pool, http, shop, operation["url"], total, 0, event_prefix, apply, progress, counts
        )
    return counts


async def _apply_orders(
    pool: AsyncConnectionPool[DictConnection],
    http: httpx.AsyncClient,
    shop: str,
    url: str,
    total: int | None,
    skip: int,
    event_prefix: str,
    apply: ApplyBatch,
    progress: Progress | None,
    counts: ExportCounts,
) -> None:
    sink = _Sink(pool, counts, apply, progress, total)
    received = datetime.now(UTC).isoformat()
    async for root, children in bulk.stitched(http, url, sink.read):
        counts.roots += 1
        if counts.roots <= skip:
            continue
        try:
            exported = BulkOrder.model_validate(root, strict=False)
            # Parsed JSON: timestamps are still text, which only lax mode reads; ids and
            # quantities keep their strict types field by field.
            own = [c for c in children if c.get("__parentId") == root.get("id")]
            order = exported.as_order([BulkLineItem.model_validate(c, strict=False) for c in own])
            refunds = exported.as_refunds(
                order,
                [
                    BulkRefundLine.model_validate(c, strict=False)
                    for c in children
                    if c.get("__parentId") != root.get("id")
                ],
            )
        except ValueError as exc:
            await _reject(pool, shop, counts, "order", root, children, exc)
            continue
        sink.events += _events(
            shop, "orders/updated", f"{event_prefix}order:{order.id}", received, order
        )
        for refund in refunds:
            sink.events += _events(
                shop, "refunds/create", f"{event_prefix}refund:{refund.id}", received, refund
            )
        await sink.flush_when_full()
    await sink.finish()


# Stands in for the variant or inventory item of an export line that could not be read and
# does not say which it is.
UNKNOWN = -1


@dataclass
class Listed:
    """What a catalogue export listed, and what its unreadable lines named."""

    levels: set[tuple[int, int]] = field(default_factory=set)
    variants: set[int] = field(default_factory=set)
    items: set[int] = field(default_factory=set)
    unread_variants: set[int] = field(default_factory=set)
    unread_items: set[int] = field(default_factory=set)


async def read_catalogue(
    pool: AsyncConnectionPool[DictConnection],
    client: AdminClient,
    http: httpx.AsyncClient,
    shop: str,
    *,
    event_prefix: str,
    apply: ApplyBatch = apply_plainly,
    progress: Progress | None = None,
) -> ExportCounts:
    """Export every variant with its product, inventory item and levels, and apply them; then
    remove the variants and levels held here that the export no longer lists
    (:func:`_gone`)."""
    began = datetime.now(UTC)
    operation = await bulk.run(client, CATALOGUE_EXPORT)
    snapshot_after = _snapshot_after(began, operation)
    counts = ExportCounts()
    total = int(operation.get("objectCount") or 0) or None
    if not operation.get("url"):
        return counts
    sink = _Sink(pool, counts, apply, progress, total)
    received = datetime.now(UTC).isoformat()  # the levels' clock bound: the export is done
    listed = Listed()
    async for root, children in bulk.stitched(http, operation["url"], sink.read):
        counts.roots += 1
        try:
            variant = BulkVariant.model_validate(root, strict=False)
            product = variant.as_product()
            item = variant.inventoryItem
            levels = (
                [
                    BulkLevel.model_validate(c, strict=False).as_level(
                        gid_number(item.id), item.tracked
                    )
                    for c in children
                ]
                if item is not None
                else []
            )
        except ValueError as exc:
            await _reject(pool, shop, counts, "variant", root, children, exc)
            # Neither it nor its levels are taken as gone; if it does not say which it is, no
            # variant or level that the export does not list is.
            listed.unread_variants.update(variant_of(root) or {UNKNOWN})
            listed.unread_items.update(inventory_item_of(root) or {UNKNOWN})
            continue
        listed.levels.update((level.inventory_item_id, level.location_id) for level in levels)
        listed.variants.add(gid_number(variant.id))
        if item is not None:
            listed.items.add(gid_number(item.id))
        for event in _events(
            shop,
            "products/update",
            f"{event_prefix}variant:{gid_number(variant.id)}",
            received,
            product,
        ):
            if event.kind == "variant":
                # It may bring back a variant an older export found gone.
                event.data["listed_since"] = snapshot_after.isoformat()
            sink.events.append(event)
        for level in levels:
            sink.events += _events(
                shop,
                "inventory_levels/update",
                f"{event_prefix}level:{level.inventory_item_id}:{level.location_id}",
                received,
                level,
            )
        await sink.flush_when_full()
    if listed.unread_variants:
        log.warning(
            "%s: %d catalogue line(s) could not be read (in dead letters); the variants and"
            " levels they may be are kept",
            shop,
            len(listed.unread_variants),
        )
    sink.events += await _gone(pool, shop, listed, snapshot_after, event_prefix)
    await sink.finish()
    return counts


def _snapshot_after(began: datetime, operation: dict[str, Any]) -> datetime:
    """A time the export's snapshot is certainly after, on our clock and on Shopify's (which
    stamps ``updated_at`` and may run ahead of ours by up to ``CLOCK_SKEW``): a change after
    it may be missing from the export. The export may have been started before this pass
    began (one interrupted, which :func:`bulk.run` joins)."""
    try:
        created = datetime.fromisoformat(str(operation["createdAt"]).replace("Z", "+00:00"))
    except (KeyError, ValueError):
        created = began
    if created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    return min(began, created) - CLOCK_SKEW


async def _gone(
    pool: AsyncConnectionPool[DictConnection],
    shop: str,
    listed: Listed,
    snapshot_after: datetime,
    event_prefix: str,
) -> list[SkuEvent]:
    """Variants and levels held here that a complete catalogue export does not list, unchanged
    since before its snapshot (a webhook since then may be newer than the export).

    - A variant: Shopify deleted it. Deleting a variant sends only a products/update without
      it, whose list of variants may be cut short on a big product, so its absence there is
      not taken as a delete. A variant whose line could not be read is kept; if a line does
      not say which variant it is, every variant is.
    - A level: Shopify disconnected the item from the location, or deleted the location (its
      inventory_levels/disconnect webhook is not applied: no timestamp to order it by is known
      in its body), or deleted its variant. A level of an item whose line could not be read is
      kept; if a line does not say which item it is, only the levels of items the export lists
      or of variants deleted now are judged."""
    async with pool.connection() as conn:
        held = await ledger.levels_unchanged_since(conn, shop, snapshot_after)
        held_variants = await ledger.variants_unchanged_since(conn, shop, snapshot_after)
        await conn.commit()
    gone_variants = (
        {}
        if UNKNOWN in listed.unread_variants
        else {
            variant_id: known
            for variant_id, known in held_variants.items()
            if variant_id not in listed.variants and variant_id not in listed.unread_variants
        }
    )
    judged_items = (
        listed.items | {item for item in gone_variants.values() if item is not None}
        if UNKNOWN in listed.unread_items
        else None
    )
    bound = snapshot_after.isoformat()

    # Variants first: a deleted variant goes before its levels do, so it is never held with no
    # stock, which would look like a stockout and alert.
    return [
        SkuEvent(
            kind="variant_gone",
            shop=shop,
            event_id=f"{event_prefix}variant-gone:{variant_id}",
            received_at=bound,
            data={"variant_id": variant_id, "unchanged_since": bound},
        )
        for variant_id in sorted(gone_variants)
    ] + [
        SkuEvent(
            kind="level_gone",
            shop=shop,
            event_id=f"{event_prefix}level-gone:{item}:{location}",
            received_at=bound,
            data={"inventory_item_id": item, "location_id": location, "unchanged_since": bound},
        )
        for item, location in held
        if (item, location) not in listed.levels
        and item not in listed.unread_items
        and (judged_items is None or item in judged_items)
    ]


async def read_locations(
    pool: AsyncConnectionPool[DictConnection], client: AdminClient, shop: str
) -> int:
    """Store the shop's locations (names for its stock); how many there are."""
    found = [
        (gid_number(node["id"]), str(node["name"])[:1024], bool(node["isActive"]))
        async for node in client.pages(LOCATIONS_QUERY, {}, ("locations",))
    ]
    async with pool.connection() as conn, conn.transaction():
        await locations.replace(conn, shop, found)
    return len(found)
