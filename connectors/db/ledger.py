"""The write path: apply normalised per-SKU events to PostgreSQL, idempotently and order-safely.

* Sale and refund lines are keyed by Shopify's line item / refund ids; each change recomputes the
  line's net units (``stockpulse_recount_line``) and applies only the difference.
* Stock levels and product data carry Shopify's ``updated_at``; an older one never overwrites a
  newer one, and within one second the later ``X-Shopify-Triggered-At`` wins (migration 0026).

So applying any event twice, or a set of events in any order, ends in the same state.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

import psycopg
from psycopg.rows import tuple_row
from psycopg.types.json import Jsonb

from connectors.db import dead_letters, inbox
from connectors.db.pool import DictConnection
from connectors.kafka.topics import SkuEvent

log = logging.getLogger(__name__)


@dataclass
class Touched:
    """A SKU whose published numbers may have changed."""

    shop: str
    variant_id: int
    type: str
    event_ids: list[str] = field(default_factory=list)
    received_at: datetime | None = None


# What a change says, least to most; a SKU changed several ways says the most of them: its
# removal, else a demand change (which matters more to readers than a stock one), else stock.
CHANGE_WEIGHT = {"stock": 0, "demand": 1, "removed": 2}


class ChangeSet:
    def __init__(self) -> None:
        self._by_sku: dict[tuple[str, int], Touched] = {}

    def add(self, shop: str, variant_id: int, type_: str, event: SkuEvent) -> None:
        key = (shop, variant_id)
        touched = self._by_sku.get(key)
        if touched is None:
            touched = self._by_sku[key] = Touched(shop, variant_id, type_)
        elif CHANGE_WEIGHT[type_] > CHANGE_WEIGHT[touched.type]:
            touched.type = type_
        if event.event_id not in touched.event_ids:
            touched.event_ids.append(event.event_id)
        received = datetime.fromisoformat(event.received_at)
        if touched.received_at is None or received < touched.received_at:
            touched.received_at = received

    def __iter__(self) -> Any:
        return iter(self._by_sku.values())

    def __len__(self) -> int:
        return len(self._by_sku)


# The kinds applied by one SQL function each, with the kind of change it makes and the
# function's parameters, in order: each returns the variant ids it changed. A run of events of
# one kind goes to the database as one statement, the function called for each in turn (one
# statement an event cost psycopg ~75 µs of Python each, most of a backfill's time). A field an
# event lacks (produced before it existed) is NULL, which is what it meant then.
# "removed" marks what deletes a variant: only that announces it gone.
_FUNCTIONS: dict[str, tuple[str, str, str]] = {
    "sale_line": (
        "demand",
        "stockpulse_apply_sale_line",
        "shop text, line_item_id bigint, order_id bigint, variant_id bigint, product_id bigint,"
        " sku text, title text, quantity integer, price numeric, ordered_at timestamptz,"
        " cancelled boolean, test boolean, cause text, version timestamptz,"
        " ordered_quantity integer, triggered_at timestamptz",
    ),
    "refund_line": (
        "demand",
        "stockpulse_apply_refund_line",
        "shop text, refund_id bigint, line_item_id bigint, quantity integer, restocked boolean,"
        " created_at timestamptz, cause text",
    ),
    "stock": (
        "stock",
        "stockpulse_apply_stock",
        "shop text, inventory_item_id bigint, location_id bigint, available integer,"
        " updated_at timestamptz, triggered_at timestamptz",
    ),
    # Only from the reconciliation's export (migration 0030): a level Shopify no longer lists.
    "level_gone": (
        "stock",
        "stockpulse_remove_level",
        "shop text, inventory_item_id bigint, location_id bigint, unchanged_since timestamptz",
    ),
    # Only from the reconciliation's export (migration 0033): a variant Shopify no longer lists.
    "variant_gone": (
        "removed",
        "stockpulse_remove_variant",
        "shop text, variant_id bigint, unchanged_since timestamptz",
    ),
    # listed_since: from a catalogue export, which may bring back a variant an older export
    # found gone (migration 0035).
    "variant": (
        "stock",
        "stockpulse_apply_variant",
        "shop text, variant_id bigint, product_id bigint, sku text, product_title text,"
        " variant_title text, inventory_item_id bigint, price numeric, tracked boolean,"
        " updated_at timestamptz, triggered_at timestamptz, listed_since timestamptz",
    ),
}


def _run_statement(function: str, columns: str) -> str:
    """One call of ``function`` per element of a JSON array, in the array's order (a lateral
    call runs once per row as the array is read), each result row paired with its element's
    place in the array."""
    names = ", ".join(column.split()[0] for column in columns.split(","))
    arguments = ", ".join(f"x.{column.split()[0]}" for column in columns.split(","))
    return (
        f"SELECT x.n, r.v FROM ROWS FROM (jsonb_to_recordset(%s) AS ({columns}))"
        f" WITH ORDINALITY AS x({names}, n)"
        f" CROSS JOIN LATERAL {function}({arguments}) AS r(v)"
    )


_RUN_STATEMENTS = {
    kind: _run_statement(function, columns) for kind, (_, function, columns) in _FUNCTIONS.items()
}

# The kinds that are one statement each, with the kind of change it makes; each returns the
# variant ids it changed. They are rare (a product deleted, a shop gone).
_STATEMENTS: dict[str, tuple[str, str]] = {
    # Final (migration 0025): the tombstone keeps out whatever of the product arrives later.
    "product_delete": (
        "removed",
        "WITH tombstone AS (INSERT INTO deleted_products (shop, product_id)"
        " SELECT domain, %(product_id)s FROM shops WHERE domain = %(shop)s"
        " ON CONFLICT DO NOTHING)"
        " UPDATE variants SET deleted = true"
        " WHERE shop = %(shop)s AND product_id = %(product_id)s AND NOT deleted"
        " RETURNING variant_id",
    ),
    # The merchant removed the app: its tokens are useless and must go; the data stays until
    # Shopify's shop/redact (48 hours later) asks for it, and a reinstall picks it up again.
    # A shop on an app of its own keeps that app's secret, which shop/redact is signed with.
    # An uninstall from before the shop's latest install (a late retry) changes nothing.
    "app_uninstalled": (
        "stock",
        "WITH gone AS (UPDATE shops SET uninstalled_at = coalesce(%(at)s, now())"
        "  WHERE domain = %(shop)s AND uninstalled_at IS NULL"
        "  AND installed_at <= coalesce(%(at)s, now()) RETURNING domain),"
        " a AS (DELETE FROM shop_credentials c USING gone"
        "  WHERE c.shop = gone.domain AND c.mode = 'authorization_code'),"
        " b AS (UPDATE shop_credentials c SET access_token = NULL, access_expires_at = NULL,"
        "  refresh_token = NULL, refresh_expires_at = NULL, updated_at = now() FROM gone"
        "  WHERE c.shop = gone.domain AND c.mode <> 'authorization_code')"
        " SELECT NULL::bigint FROM gone",
    ),
    # Shopify sends shop/redact 48 hours after an uninstall: only an uninstalled shop is
    # erased, and only by a redact from after that uninstall. One replayed from an earlier
    # uninstall, or sent for a shop installed again since, changes nothing (an outside test
    # erased a live, reinstalled shop with a redact triggered before its install).
    # Tables without a foreign key to shops (time series, outbox) are cleared explicitly.
    "shop_redact": (
        "stock",
        "WITH gone AS (SELECT domain FROM shops WHERE domain = %(shop)s"
        "  AND uninstalled_at IS NOT NULL AND uninstalled_at <= coalesce(%(at)s, now())),"
        " a AS (DELETE FROM demand_ledger WHERE shop IN (SELECT domain FROM gone)),"
        " b AS (DELETE FROM stock_history WHERE shop IN (SELECT domain FROM gone)),"
        " c AS (DELETE FROM update_outbox WHERE shop IN (SELECT domain FROM gone)),"
        " d AS (DELETE FROM dead_letters WHERE shop IN (SELECT domain FROM gone)),"
        " e AS (DELETE FROM webhook_inbox WHERE shop IN (SELECT domain FROM gone)),"
        " f AS (DELETE FROM oauth_states WHERE shop IN (SELECT domain FROM gone)),"
        # The invitation limits' counters name the shop and the invited addresses.
        " g AS (DELETE FROM login_failures WHERE EXISTS (SELECT 1 FROM gone)"
        "  AND (key = 'invite:' || %(shop)s OR starts_with(key, 'invite:' || %(shop)s || ':')))"
        " DELETE FROM shops WHERE domain IN (SELECT domain FROM gone) RETURNING NULL::bigint",
    ),
}


_DEFAULTS: dict[str, dict[str, object]] = {
    "app_uninstalled": {"at": None},
    "shop_redact": {"at": None},
}


async def _apply_all(conn: DictConnection, events: Sequence[SkuEvent], changes: ChangeSet) -> None:
    """Send every run of events in one pipeline, in order, then read which SKUs changed."""
    async with conn.pipeline() as pipeline:
        pending = []
        for run in _runs_of_one_kind(events):
            kind = run[0].kind
            cursor = conn.cursor(row_factory=tuple_row)
            if kind in _FUNCTIONS:
                rows = [
                    {**event.data, "shop": event.shop, "cause": event.event_id} for event in run
                ]
                await cursor.execute(_RUN_STATEMENTS[kind], (Jsonb(rows),))
                pending.append((run, _FUNCTIONS[kind][0], cursor))
            else:
                type_, sql = _STATEMENTS[kind]
                await cursor.execute(
                    sql, {**_DEFAULTS.get(kind, {}), **run[0].data, "shop": run[0].shop}
                )
                pending.append((run, type_, cursor))
        await pipeline.sync()
        for run, type_, cursor in pending:
            for row in await cursor.fetchall():
                # A run's rows name their event's place in it, then a variant.
                event, variant_id = (run[row[0] - 1], row[1]) if len(row) == 2 else (run[0], row[0])
                if variant_id is not None:
                    changes.add(event.shop, variant_id, type_, event)


def _runs_of_one_kind(events: Sequence[SkuEvent]) -> list[list[SkuEvent]]:
    """``events`` in order, consecutive ones of a kind applied by a function grouped together;
    any other kind stands alone."""
    runs: list[list[SkuEvent]] = []
    for event in events:
        if runs and event.kind in _FUNCTIONS and runs[-1][0].kind == event.kind:
            runs[-1].append(event)
        else:
            runs.append([event])
    return runs


class OutboxRow(NamedTuple):
    """An outbox row: the SKU whose update, and then forecast, it waits for."""

    id: int
    shop: str
    variant_id: int


async def _record_outbox(
    conn: DictConnection, changes: ChangeSet, owner: int | None
) -> list[OutboxRow]:
    if not len(changes):
        return []
    rows = [
        {
            "shop": t.shop,
            "variant_id": t.variant_id,
            "type": t.type,
            "event_ids": t.event_ids[-50:],
            "received_at": t.received_at.isoformat() if t.received_at else None,
        }
        for t in changes
    ]
    cur = await conn.execute(
        "INSERT INTO update_outbox (shop, variant_id, type, event_ids, received_at, owner)"
        " SELECT shop, variant_id, type, event_ids, received_at, %s FROM jsonb_to_recordset(%s)"
        " AS x(shop text, variant_id bigint, type text, event_ids text[], received_at timestamptz)"
        " RETURNING id, shop, variant_id",
        (owner, Jsonb(rows)),
    )
    return [OutboxRow(r["id"], r["shop"], r["variant_id"]) for r in await cur.fetchall()]


async def apply_events(
    conn: DictConnection, events: Sequence[SkuEvent], outbox_owner: int | None = None
) -> tuple[ChangeSet, list[OutboxRow]]:
    """Apply ``events`` inside the caller's transaction; returns the touched SKUs and their
    outbox rows, and clears the events' notes in the webhook inbox. ``outbox_owner``: the
    worker's :func:`hold_outbox_owner` key, when a worker publishes the rows itself; a
    command's rows (none) are the worker's to publish at once.

    Raises on any event the database refuses; the caller isolates it (see streams.poison).
    """
    changes = ChangeSet()
    # An uninstall first: what its shop sent after it, in the same batch, must see it.
    uninstalls = [e for e in events if e.kind == "app_uninstalled"]
    others = [e for e in events if e.kind != "app_uninstalled"]
    if uninstalls:
        await _apply_all(conn, uninstalls, changes)
    await _apply_all(conn, await _not_after_uninstall(conn, others), changes)
    outbox = await _record_outbox(conn, changes, outbox_owner)
    await inbox.mark_applied(conn, _notes(events))
    return changes, outbox


# What an uninstalled shop still takes: its uninstall again (a no-op) and its erasure.
_TAKEN_WHEN_UNINSTALLED = frozenset({"app_uninstalled", "shop_redact"})


async def _not_after_uninstall(
    conn: DictConnection, events: Sequence[SkuEvent]
) -> Sequence[SkuEvent]:
    """``events`` without those an uninstalled shop sent after its uninstall: they were accepted
    while the web app's list of shops still had it (up to KNOWN_SHOPS_REFRESH_SECONDS), and
    nothing syncs after an uninstall. An event of before it, delivered late, still counts."""
    shops = sorted({e.shop for e in events if e.kind not in _TAKEN_WHEN_UNINSTALLED})
    if not shops:
        return events
    cur = await conn.execute(
        "SELECT domain, uninstalled_at FROM shops"
        " WHERE domain = ANY(%s) AND uninstalled_at IS NOT NULL",
        (shops,),
    )
    gone = {r["domain"]: r["uninstalled_at"] for r in await cur.fetchall()}
    if not gone:
        return events
    kept = [
        e
        for e in events
        if e.kind in _TAKEN_WHEN_UNINSTALLED or e.shop not in gone or _moment(e) <= gone[e.shop]
    ]
    if len(kept) < len(events):
        log.info("left out %d event(s) sent after their shop's uninstall", len(events) - len(kept))
    return kept


def _moment(event: SkuEvent) -> datetime:
    """When Shopify triggered the event, where known; else when it was received."""
    return datetime.fromisoformat(event.data.get("triggered_at") or event.received_at)


async def levels_unchanged_since(
    conn: DictConnection, shop: str, since: datetime
) -> list[tuple[int, int]]:
    """The (inventory item, location) of the shop's levels not changed since ``since``."""
    cur = await conn.execute(
        "SELECT inventory_item_id, location_id FROM inventory_levels"
        " WHERE shop = %s AND updated_at <= %s",
        (shop, since),
    )
    return [(r["inventory_item_id"], r["location_id"]) for r in await cur.fetchall()]


async def variants_unchanged_since(
    conn: DictConnection, shop: str, since: datetime
) -> dict[int, int | None]:
    """The shop's variants not deleted and not changed (or, never described by Shopify, not
    first seen) since ``since``, with their inventory items."""
    cur = await conn.execute(
        "SELECT variant_id, inventory_item_id FROM variants WHERE shop = %s AND NOT deleted"
        " AND coalesce(updated_at, first_seen_at) <= %s",
        (shop, since),
    )
    return {r["variant_id"]: r["inventory_item_id"] for r in await cur.fetchall()}


async def dead_letter(conn: DictConnection, event: SkuEvent, error: BaseException) -> None:
    """Set aside an event that can never be applied, clearing its inbox note with it."""
    reason = describe(error)
    log.error("dead-lettering %s event %s: %s", event.kind, event.event_id, reason)
    await dead_letters.record(
        conn,
        stage="apply",
        shop=event.shop,
        event_id=event.event_id,
        kind=event.kind,
        data=event.model_dump(mode="json"),
        error=reason,
    )
    await inbox.mark_applied(conn, _notes([event]))


async def reclaim(conn: DictConnection, shop: str, events: Sequence[SkuEvent]) -> int:
    """Before applying what Shopify's Admin API listed for ``shop`` (read with its own token,
    so its own): remove another shop's rows with the same variant or line item ids, their
    demand reversed first (migration 0047). Such rows come only from a body of this shop
    replayed under the other's domain before the genuine one; they kept this shop's product
    or orders out for good. Returns how many rows went; nearly always none."""
    variants = [
        e.data["variant_id"]
        for e in events
        if e.kind in ("variant", "sale_line") and e.data.get("variant_id") is not None
    ]
    lines = [e.data["line_item_id"] for e in events if e.kind == "sale_line"]
    if not variants and not lines:
        return 0
    cur = await conn.execute(
        "SELECT stockpulse_reclaim(%s, %s::bigint[], %s::bigint[]) AS n", (shop, variants, lines)
    )
    row = await cur.fetchone()
    removed = int(row["n"]) if row is not None else 0
    if removed:
        log.warning(
            "%s: removed %d rows another shop held under this shop's ids (a replayed body)",
            shop,
            removed,
        )
    return removed


def describe(error: BaseException) -> str:
    """A reason an operator can act on: a database's primary message, without the PL/pgSQL
    call stack it carries after it."""
    if isinstance(error, psycopg.errors.UniqueViolation):
        constraint = error.diag.constraint_name or ""
        if "_global_" in constraint:
            # Which id, but not whose: the reason is shown with this shop's letters.
            which = (error.diag.message_detail or error.diag.message_primary or "").rstrip(".")
            return (
                f"this Shopify id already belongs to another shop ({constraint}: {which})."
                " Either this body was replayed under the wrong shop's domain, or it is this"
                " shop's own and such a replay was applied before it"
            )
    if isinstance(error, psycopg.Error) and error.diag.message_primary:
        return f"{type(error).__name__}: {error.diag.message_primary}"
    return f"{type(error).__name__}: {error}".strip()


def _notes(events: Sequence[SkuEvent]) -> list[tuple[int, int]]:
    return [(e.inbox_id, e.seq) for e in events if e.inbox_id is not None]


async def take_stale_outbox(
    conn: DictConnection,
    older_than_s: float,
    skip: Collection[int] = (),
    limit: int = 500,
    owner: int | None = None,
) -> list[dict[str, Any]]:
    """Outbox rows a crashed or slow worker left behind (other than ``skip``, the caller's
    own), leased to the caller (``owner``): they count as new again, so no other worker takes
    them while the caller publishes their updates and forecasts. A row is left behind once it
    is ``older_than_s`` old, or at once when no live worker holds its owner's lock (a
    command's row, or a crashed worker's: its lock went with its connection)."""
    cur = await conn.execute(
        "UPDATE update_outbox SET created_at = now(), owner = %s WHERE id IN ("
        " SELECT o.id FROM update_outbox o"
        " WHERE NOT o.id = ANY(%s) AND (o.created_at < now() - make_interval(secs => %s)"
        "  OR o.owner IS NULL OR NOT EXISTS ("
        "   SELECT 1 FROM pg_locks l"
        "   WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1"
        "    AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        "    AND (l.classid::bigint << 32 | l.objid::bigint) = o.owner))"
        " ORDER BY o.id LIMIT %s FOR UPDATE SKIP LOCKED)"
        " RETURNING id, shop, variant_id, type, event_ids, received_at",
        (owner, list(skip), older_than_s, limit),
    )
    return sorted(await cur.fetchall(), key=lambda r: r["id"])


async def hold_outbox_owner(conn: DictConnection) -> int:
    """Take a new owner key for the outbox rows of a worker, as a session advisory lock on
    ``conn`` (autocommit), held while the connection lives: its rows are known to be left
    behind as soon as it closes, a crash included. A key in [1, 2**62), so that the lock's
    two 32-bit halves in pg_locks read back to it."""
    owner = secrets.randbelow(2**62 - 1) + 1
    await conn.execute("SELECT pg_advisory_lock(%s)", (owner,))
    return owner


async def queue_every_sku(conn: DictConnection, stale_after_s: float) -> int:
    """An outbox row for every live SKU of every installed shop, already stale: the outbox
    timer publishes each one's update and then its forecast. For a broker that came back
    empty (the embedded one keeps its log in memory)."""
    cur = await conn.execute(
        "INSERT INTO update_outbox (shop, variant_id, type, created_at)"
        " SELECT v.shop, v.variant_id, 'stock', now() - make_interval(secs => %s)"
        " FROM variants v JOIN shops s ON s.domain = v.shop"
        " WHERE NOT v.deleted AND s.uninstalled_at IS NULL",
        (stale_after_s,),
    )
    return cur.rowcount


async def delete_outbox(conn: DictConnection, ids: Iterable[int]) -> None:
    await conn.execute("DELETE FROM update_outbox WHERE id = ANY(%s)", (list(ids),))
