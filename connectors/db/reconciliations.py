"""Reconciliation passes and the corrections they made: what, old, new, why."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from connectors.db.pool import DictConnection

# Shopify's clock and ours differ a little, and an order can be committed in Shopify a moment
# after its updated_at: each pass looks back this much before the last one began.
OVERLAP = timedelta(minutes=10)
# A shop with no pass and no backfill yet: how far back the first pass looks.
FIRST_LOOK_BACK = timedelta(days=1)


KINDS = ("stock_level", "order_line", "variant")


@dataclass(frozen=True)
class Correction:
    kind: str  # stock_level, order_line or variant
    subject: str
    old: str | None
    new: str | None
    reason: str


async def claim(conn: DictConnection, shop: str) -> int | None:
    """Begin a pass for ``shop``: its id, or None when one is running already. Orders are
    compared from a little before the last successful pass began. Claim only while holding
    the shop's pass lock (:func:`take_pass_lock`), and hold it until the pass ends."""
    cur = await conn.execute(
        "SELECT coalesce("
        "  (SELECT max(started_at) FROM reconciliations WHERE shop = %(shop)s"
        "     AND status = 'done'),"
        "  (SELECT started_at FROM backfills WHERE shop = %(shop)s AND status = 'done'),"
        "  now() - %(first)s) - %(overlap)s AS since",
        {"shop": shop, "first": FIRST_LOOK_BACK, "overlap": OVERLAP},
    )
    row = await cur.fetchone()
    assert row is not None
    cur = await conn.execute(
        "INSERT INTO reconciliations (shop, status, orders_since) VALUES (%s, 'running', %s)"
        " ON CONFLICT (shop) WHERE status = 'running' DO NOTHING RETURNING id",
        (shop, row["since"]),
    )
    claimed = await cur.fetchone()
    return int(claimed["id"]) if claimed else None


async def get(conn: DictConnection, reconciliation_id: int) -> dict[str, Any] | None:
    cur = await conn.execute("SELECT * FROM reconciliations WHERE id = %s", (reconciliation_id,))
    return await cur.fetchone()


async def finish(
    conn: DictConnection,
    reconciliation_id: int,
    *,
    levels: int = 0,
    orders: int = 0,
    error: str | None = None,
) -> None:
    await conn.execute(
        "UPDATE reconciliations SET status = %s, finished_at = now(), levels_checked = %s,"
        " orders_checked = %s, error = %s WHERE id = %s AND status = 'running'",
        ("failed" if error else "done", levels, orders, error, reconciliation_id),
    )


# A pass's process holds its shop's pass lock (a session-level advisory lock) from before it
# claims the pass until it ends: a pass marked running whose lock is free has lost its process
# (killed, or its machine gone), whose session ended and so released the lock.
_LOCK_KEY = "hashtext('stockpulse.reconciliation'), hashtext(%s)"


async def take_pass_lock(conn: DictConnection, shop: str) -> bool:
    """The shop's pass lock for this session (re-entrant): False when another session has it."""
    cur = await conn.execute(f"SELECT pg_try_advisory_lock({_LOCK_KEY}) AS locked", (shop,))
    row = await cur.fetchone()
    return bool(row and row["locked"])


async def release_pass_lock(conn: DictConnection, shop: str) -> None:
    await conn.execute(f"SELECT pg_advisory_unlock({_LOCK_KEY})", (shop,))


async def abandon_orphans(conn: DictConnection, reason: str, shop: str | None = None) -> int:
    """End as failed the passes marked running (of ``shop``, or of every shop) whose process
    is gone; a pass whose process still runs, in this worker or any other, is left alone. Run
    it in a transaction. A process holding the shop's pass lock finds every running pass of
    its shop gone (the locks are re-entrant)."""
    cur = await conn.execute(
        "SELECT id, shop FROM reconciliations WHERE status = 'running'"
        " AND (%s::text IS NULL OR shop = %s) ORDER BY id",
        (shop, shop),
    )
    abandoned = 0
    for row in await cur.fetchall():
        # A transaction's lock: it conflicts with another session's pass lock, and ends with
        # the transaction, whatever happens in it (a session lock could stay on a pooled
        # connection after a failed statement).
        locked = await conn.execute(
            f"SELECT pg_try_advisory_xact_lock({_LOCK_KEY}) AS locked", (row["shop"],)
        )
        if not ((await locked.fetchone()) or {}).get("locked"):
            continue  # its process holds the lock: it is running
        done = await conn.execute(
            "UPDATE reconciliations SET status = 'failed', finished_at = now(), error = %s"
            " WHERE id = %s AND status = 'running'",
            (reason, row["id"]),
        )
        abandoned += done.rowcount
    return abandoned


async def due(conn: DictConnection, interval: timedelta) -> list[str]:
    """Connected shops whose last pass began ``interval`` ago or more (the first pass comes an
    interval after the backfill, or the install), whose history is not being backfilled,
    longest waiting first."""
    cur = await conn.execute(
        "SELECT s.domain FROM shops s JOIN shop_credentials c ON c.shop = s.domain"
        " LEFT JOIN backfills b ON b.shop = s.domain"
        " LEFT JOIN LATERAL (SELECT max(started_at) AS last,"
        "                           bool_or(status = 'running') AS running"
        "                      FROM reconciliations r WHERE r.shop = s.domain) r ON true"
        " WHERE s.uninstalled_at IS NULL"
        "   AND (b.status IS NULL OR b.status IN ('done', 'failed'))"
        "   AND NOT coalesce(r.running, false)"
        "   AND coalesce(r.last, b.finished_at, s.installed_at) <= now() - %s"
        " ORDER BY coalesce(r.last, b.finished_at, s.installed_at), s.domain",
        (interval,),
    )
    return [row["domain"] for row in await cur.fetchall()]


async def record(
    conn: DictConnection, reconciliation_id: int, shop: str, corrections: Sequence[Correction]
) -> None:
    if not corrections:
        return
    await conn.cursor().executemany(
        "INSERT INTO reconciliation_corrections"
        " (reconciliation_id, shop, kind, subject, old_value, new_value, reason)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s)",
        [(reconciliation_id, shop, c.kind, c.subject, c.old, c.new, c.reason) for c in corrections],
    )
    await conn.execute(
        "UPDATE reconciliations SET corrections = corrections + %s WHERE id = %s",
        (len(corrections), reconciliation_id),
    )


async def corrections(
    conn: DictConnection, shop: str, *, limit: int = 100, reconciliation_id: int | None = None
) -> list[dict[str, Any]]:
    cur = await conn.execute(
        "SELECT reconciliation_id, kind, subject, old_value, new_value, reason, created_at"
        " FROM reconciliation_corrections WHERE shop = %s"
        " AND (%s::bigint IS NULL OR reconciliation_id = %s) ORDER BY id DESC LIMIT %s",
        (shop, reconciliation_id, reconciliation_id, limit),
    )
    return list(await cur.fetchall())


async def latest(conn: DictConnection, shop: str) -> dict[str, Any] | None:
    cur = await conn.execute(
        "SELECT * FROM reconciliations WHERE shop = %s ORDER BY started_at DESC LIMIT 1", (shop,)
    )
    return await cur.fetchone()


async def correction_counts(conn: DictConnection) -> dict[str, int]:
    """Corrections recorded, by kind, over every shop (for /metrics)."""
    cur = await conn.execute(
        "SELECT kind, count(*) AS n FROM reconciliation_corrections GROUP BY kind"
    )
    return {row["kind"]: int(row["n"]) for row in await cur.fetchall()}


async def oldest_pass_age(conn: DictConnection) -> float | None:
    """Seconds since the connected shop longest without a successful pass had one (None: no
    shop has had one): reconciliation that stopped running shows here."""
    cur = await conn.execute(
        "SELECT extract(epoch FROM now() - min(last)) AS age FROM ("
        "  SELECT max(r.finished_at) AS last FROM shops s"
        "  JOIN shop_credentials c ON c.shop = s.domain"
        "  JOIN reconciliations r ON r.shop = s.domain AND r.status = 'done'"
        "  WHERE s.uninstalled_at IS NULL GROUP BY s.domain) x"
    )
    row = await cur.fetchone()
    return float(row["age"]) if row and row["age"] is not None else None


# What a batch of exported events may change, read before and after applying it.


@dataclass
class Snapshot:
    lines: dict[int, tuple[int, int | None, int]]  # line item → (order, variant, counted units)
    levels: dict[tuple[int, int], int | None]  # (inventory item, location) → available
    # variant → (sku, product title, variant title, price); deleted ones in ``gone``
    variants: dict[int, tuple[Any, ...]]
    gone: set[int] = field(default_factory=set)
    # Items of ``levels`` whose variant is deleted: their levels went with it.
    items_of_gone: set[int] = field(default_factory=set)


async def snapshot(
    conn: DictConnection,
    shop: str,
    line_ids: Sequence[int],
    levels: Sequence[tuple[int, int]],
    variant_ids: Sequence[int],
) -> Snapshot:
    shot = Snapshot({}, {}, {})
    if line_ids:
        cur = await conn.execute(
            "SELECT line_item_id, order_id, variant_id, counted_units FROM order_lines"
            " WHERE shop = %s AND line_item_id = ANY(%s)",
            (shop, list(line_ids)),
        )
        for r in await cur.fetchall():
            shot.lines[r["line_item_id"]] = (r["order_id"], r["variant_id"], r["counted_units"])
    if levels:
        cur = await conn.execute(
            "SELECT l.inventory_item_id, l.location_id, l.available FROM inventory_levels l"
            " JOIN unnest(%s::bigint[], %s::bigint[]) AS k(item, loc)"
            "   ON l.inventory_item_id = k.item AND l.location_id = k.loc WHERE l.shop = %s",
            ([item for item, _ in levels], [loc for _, loc in levels], shop),
        )
        for r in await cur.fetchall():
            shot.levels[(r["inventory_item_id"], r["location_id"])] = r["available"]
        cur = await conn.execute(
            "SELECT DISTINCT inventory_item_id FROM variants"
            " WHERE shop = %s AND deleted AND inventory_item_id = ANY(%s)",
            (shop, list({item for item, _ in levels})),
        )
        shot.items_of_gone = {r["inventory_item_id"] for r in await cur.fetchall()}
    if variant_ids:
        cur = await conn.execute(
            "SELECT variant_id, sku, product_title, variant_title, price, deleted,"
            " updated_at IS NULL AS placeholder FROM variants"
            " WHERE shop = %s AND variant_id = ANY(%s)",
            (shop, list(variant_ids)),
        )
        for r in await cur.fetchall():
            if r["deleted"]:
                shot.gone.add(r["variant_id"])
            if r["placeholder"]:
                continue  # named by an order only: Shopify describing it is no correction
            shot.variants[r["variant_id"]] = (
                r["sku"],
                r["product_title"],
                r["variant_title"],
                str(r["price"]) if r["price"] is not None else None,
            )
    return shot


def differences(before: Snapshot, after: Snapshot) -> list[Correction]:
    """What applying Shopify's state changed, each with the webhook that should have told us."""
    found: list[Correction] = []
    for line_id, (order_id, variant_id, units) in after.lines.items():
        old = before.lines.get(line_id)
        if old is not None and old[2] == units:
            continue
        found.append(
            Correction(
                "order_line",
                f"order {order_id} line {line_id} (variant {variant_id})",
                None if old is None else f"{old[2]} units",
                f"{units} units",
                "the order never arrived (its orders/create webhook was missed)"
                if old is None
                else "the order changed in Shopify since its last webhook (a missed edit,"
                " cancellation or refund)",
            )
        )
    for (item, location), available in after.levels.items():
        if (item, location) in before.levels and before.levels[(item, location)] == available:
            continue
        missing = (item, location) not in before.levels
        found.append(
            Correction(
                "stock_level",
                f"inventory item {item} at location {location}",
                None if missing else _text(before.levels[(item, location)]),
                _text(available),
                "no stock level had arrived (an inventory_levels/update was missed)"
                if missing
                else "Shopify holds a newer level (an inventory_levels/update was missed)",
            )
        )
    for (item, location), available in before.levels.items():
        if (item, location) in after.levels:
            continue
        found.append(
            Correction(
                "stock_level",
                f"inventory item {item} at location {location}",
                _text(available),
                "disconnected",
                "its variant was deleted in Shopify"
                if item in after.items_of_gone
                else "Shopify no longer stocks the item at this location (disconnected, or the"
                " location deleted)",
            )
        )
    for variant_id in sorted(after.gone - before.gone):
        old_details = before.variants.get(variant_id)
        found.append(
            Correction(
                "variant",
                f"variant {variant_id}",
                _details(old_details) if old_details else "named by an order only",
                "deleted",
                "Shopify no longer lists the variant: deleted there without a webhook saying"
                " so (a products/update that leaves it out is not taken as a delete)",
            )
        )
    for variant_id in sorted(before.gone - after.gone):
        details = after.variants.get(variant_id)
        found.append(
            Correction(
                "variant",
                f"variant {variant_id}",
                "deleted",
                _details(details) if details else "named by an order only",
                "Shopify lists the variant again (a pass had deleted it)",
            )
        )
    for variant_id, details in after.variants.items():
        old_details = before.variants.get(variant_id)
        if old_details == details or variant_id in after.gone:
            continue
        found.append(
            Correction(
                "variant",
                f"variant {variant_id}",
                None if old_details is None else _details(old_details),
                _details(details),
                "the product was unknown (its products/create webhook was missed)"
                if old_details is None
                else "the product changed in Shopify (a products/update was missed)",
            )
        )
    return found


def _text(available: int | None) -> str:
    return "untracked" if available is None else str(available)


def _details(details: tuple[Any, ...]) -> str:
    sku, product, variant, price = details
    return f"{sku or '-'} · {product or ''} / {variant or ''} · {price}"


def since_text(ts: datetime) -> str:
    """A timestamp as Shopify's search syntax reads it."""
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
