"""The write path: apply normalised per-SKU events to PostgreSQL, idempotently and order-safely.

* Sale and refund lines are keyed by Shopify's line item / refund ids; each change recomputes the
  line's net units (``stockpulse_recount_line``) and applies only the difference.
* Stock levels and product data carry Shopify's ``updated_at``; an older one never overwrites a
  newer one.

So applying any event twice, or a set of events in any order, ends in the same state.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from connectors.kafka.topics import SkuEvent

log = logging.getLogger(__name__)

# Errors that say the event itself is unusable. Anything else (connection lost, server shutting
# down) propagates so the batch is retried rather than dropped.
POISON_ERRORS = (psycopg.errors.DataError, psycopg.errors.IntegrityError)


@dataclass
class Touched:
    """A SKU whose published numbers may have changed."""

    shop: str
    variant_id: int
    type: str
    event_ids: list[str] = field(default_factory=list)
    received_at: datetime | None = None


class ChangeSet:
    def __init__(self) -> None:
        self._by_sku: dict[tuple[str, int], Touched] = {}

    def add(self, shop: str, variant_id: int, type_: str, event: SkuEvent) -> None:
        key = (shop, variant_id)
        touched = self._by_sku.get(key)
        if touched is None:
            touched = self._by_sku[key] = Touched(shop, variant_id, type_)
        elif type_ == "demand":
            touched.type = "demand"  # a demand change matters more to readers than a stock one
        if event.event_id not in touched.event_ids:
            touched.event_ids.append(event.event_id)
        received = datetime.fromisoformat(event.received_at)
        if touched.received_at is None or received < touched.received_at:
            touched.received_at = received

    def __iter__(self) -> Any:
        return iter(self._by_sku.values())

    def __len__(self) -> int:
        return len(self._by_sku)


async def _apply_sale_line(conn: AsyncConnection, e: SkuEvent, changes: ChangeSet) -> None:
    d = e.data
    params = {**d, "shop": e.shop}
    await conn.execute(
        "INSERT INTO variants (shop, variant_id, product_id, sku, product_title, price)"
        " VALUES (%(shop)s, %(variant_id)s, %(product_id)s, %(sku)s, %(title)s, %(price)s)"
        " ON CONFLICT (shop, variant_id) DO NOTHING",
        params,
    )
    # Cancellation is sticky: a late orders/create never revives a cancelled line.
    await conn.execute(
        "INSERT INTO order_lines (shop, line_item_id, order_id, variant_id, ordered_at, day,"
        " quantity, unit_price, cancelled, test)"
        " SELECT %(shop)s, %(line_item_id)s, %(order_id)s, %(variant_id)s, %(ordered_at)s,"
        "  (%(ordered_at)s::timestamptz AT TIME ZONE s.timezone)::date,"
        "  %(quantity)s, %(price)s, %(cancelled)s, %(test)s"
        " FROM shops s WHERE s.domain = %(shop)s"
        " ON CONFLICT (shop, line_item_id) DO UPDATE"
        " SET cancelled = order_lines.cancelled OR excluded.cancelled",
        params,
    )
    await _recount(conn, e, d["line_item_id"], changes)


async def _apply_refund_line(conn: AsyncConnection, e: SkuEvent, changes: ChangeSet) -> None:
    d = e.data
    await conn.execute(
        "INSERT INTO refund_lines (shop, refund_id, line_item_id, quantity, restocked, created_at)"
        " VALUES (%(shop)s, %(refund_id)s, %(line_item_id)s, %(quantity)s, %(restocked)s,"
        "  %(created_at)s)"
        " ON CONFLICT (shop, refund_id, line_item_id) DO NOTHING",
        {**d, "shop": e.shop},
    )
    await _recount(conn, e, d["line_item_id"], changes)


async def _recount(conn: AsyncConnection, e: SkuEvent, line_item_id: int, changes: ChangeSet) -> None:
    cur = await conn.execute(
        "SELECT stockpulse_recount_line(%s, %s, %s) AS variant_id", (e.shop, line_item_id, e.event_id)
    )
    row = await cur.fetchone()
    if row and row["variant_id"] is not None:
        changes.add(e.shop, row["variant_id"], "demand", e)


async def _apply_stock(conn: AsyncConnection, e: SkuEvent, changes: ChangeSet) -> None:
    params = {**e.data, "shop": e.shop}
    cur = await conn.execute(
        "INSERT INTO inventory_levels AS l (shop, inventory_item_id, location_id, available,"
        " updated_at)"
        " SELECT %(shop)s, %(inventory_item_id)s, %(location_id)s, %(available)s, %(updated_at)s"
        " WHERE EXISTS (SELECT 1 FROM shops WHERE domain = %(shop)s)"
        " ON CONFLICT (shop, inventory_item_id, location_id) DO UPDATE"
        " SET available = excluded.available, updated_at = excluded.updated_at"
        " WHERE l.updated_at < excluded.updated_at"
        " RETURNING 1",
        params,
    )
    if await cur.fetchone() is None:
        return  # stale or repeated: a newer level is already stored
    await conn.execute(
        "INSERT INTO stock_history (shop, inventory_item_id, location_id, available, ts)"
        " VALUES (%(shop)s, %(inventory_item_id)s, %(location_id)s, %(available)s, %(updated_at)s)"
        " ON CONFLICT DO NOTHING",
        params,
    )
    cur = await conn.execute(
        "SELECT variant_id FROM variants WHERE shop = %(shop)s"
        " AND inventory_item_id = %(inventory_item_id)s",
        params,
    )
    for row in await cur.fetchall():
        changes.add(e.shop, row["variant_id"], "stock", e)


async def _apply_variant(conn: AsyncConnection, e: SkuEvent, changes: ChangeSet) -> None:
    cur = await conn.execute(
        "INSERT INTO variants AS v (shop, variant_id, product_id, sku, product_title,"
        " variant_title, inventory_item_id, price, tracked, updated_at)"
        " SELECT %(shop)s, %(variant_id)s, %(product_id)s, %(sku)s, %(product_title)s,"
        "  %(variant_title)s, %(inventory_item_id)s, %(price)s, %(tracked)s, %(updated_at)s"
        " WHERE EXISTS (SELECT 1 FROM shops WHERE domain = %(shop)s)"
        " ON CONFLICT (shop, variant_id) DO UPDATE SET"
        "  product_id = excluded.product_id, sku = excluded.sku,"
        "  product_title = excluded.product_title, variant_title = excluded.variant_title,"
        "  inventory_item_id = excluded.inventory_item_id, price = excluded.price,"
        "  tracked = excluded.tracked, deleted = false, updated_at = excluded.updated_at"
        " WHERE v.updated_at IS NULL OR v.updated_at < excluded.updated_at"
        " RETURNING variant_id",
        {**e.data, "shop": e.shop},
    )
    row = await cur.fetchone()
    if row:
        changes.add(e.shop, row["variant_id"], "stock", e)


async def _apply_product_delete(conn: AsyncConnection, e: SkuEvent, changes: ChangeSet) -> None:
    await conn.execute(
        "UPDATE variants SET deleted = true WHERE shop = %s AND product_id = %s",
        (e.shop, e.data["product_id"]),
    )


async def _apply_shop_redact(conn: AsyncConnection, e: SkuEvent, changes: ChangeSet) -> None:
    # Tables without a foreign key to shops (time series, outbox) are cleared explicitly.
    for table in ("demand_ledger", "stock_history", "update_outbox", "dead_letters"):
        await conn.execute(f"DELETE FROM {table} WHERE shop = %s", (e.shop,))
    await conn.execute("DELETE FROM shops WHERE domain = %s", (e.shop,))


_APPLY = {
    "sale_line": _apply_sale_line,
    "refund_line": _apply_refund_line,
    "stock": _apply_stock,
    "variant": _apply_variant,
    "product_delete": _apply_product_delete,
    "shop_redact": _apply_shop_redact,
}


async def _apply_one(conn: AsyncConnection, event: SkuEvent, changes: ChangeSet) -> None:
    await _APPLY[event.kind](conn, event, changes)


async def _record_outbox(conn: AsyncConnection, changes: ChangeSet) -> list[int]:
    ids = []
    for t in changes:
        cur = await conn.execute(
            "INSERT INTO update_outbox (shop, variant_id, type, event_ids, received_at)"
            " VALUES (%s, %s, %s, %s, %s) RETURNING id",
            (t.shop, t.variant_id, t.type, t.event_ids[-50:], t.received_at),
        )
        row = await cur.fetchone()
        assert row is not None
        ids.append(row["id"])
    return ids


async def apply_events(conn: AsyncConnection, events: Sequence[SkuEvent]) -> tuple[ChangeSet, list[int]]:
    """Apply ``events`` in one transaction; returns the touched SKUs and their outbox row ids.

    If the batch hits a poison event, it is re-applied one event at a time under savepoints and
    the bad events are dead-lettered.
    """
    changes = ChangeSet()
    try:
        async with conn.transaction():
            for event in events:
                await _apply_one(conn, event, changes)
            outbox_ids = await _record_outbox(conn, changes)
        return changes, outbox_ids
    except POISON_ERRORS:
        log.warning("batch of %d hit a bad event; applying one by one", len(events))
    changes = ChangeSet()
    async with conn.transaction():
        for event in events:
            try:
                async with conn.transaction():
                    await _apply_one(conn, event, changes)
            except POISON_ERRORS as exc:
                log.error("dead-lettering %s event %s: %s", event.kind, event.event_id, exc)
                await conn.execute(
                    "INSERT INTO dead_letters (shop, event_id, kind, data, error)"
                    " VALUES (%s, %s, %s, %s, %s)",
                    (event.shop, event.event_id, event.kind, Jsonb(event.data), str(exc)),
                )
        outbox_ids = await _record_outbox(conn, changes)
    return changes, outbox_ids


async def take_stale_outbox(conn: AsyncConnection, older_than_s: float, limit: int = 500) -> list[dict[str, Any]]:
    """Outbox rows a crashed or slow worker left behind, locked for this transaction."""
    cur = await conn.execute(
        "SELECT id, shop, variant_id, type, event_ids, received_at FROM update_outbox"
        " WHERE created_at < now() - make_interval(secs => %s)"
        " ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED",
        (older_than_s, limit),
    )
    return list(await cur.fetchall())


async def delete_outbox(conn: AsyncConnection, ids: Iterable[int]) -> None:
    await conn.execute("DELETE FROM update_outbox WHERE id = ANY(%s)", (list(ids),))
