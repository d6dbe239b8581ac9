"""Where each shop's history backfill stands."""

from __future__ import annotations

from datetime import date
from typing import Any

from connectors.db.pool import DictConnection


async def start(conn: DictConnection, shop: str, since: date) -> dict[str, Any]:
    """The shop's backfill, begun now unless one is under way, which is then resumed: its row
    keeps the export being read and how many of its orders were applied."""
    fresh = "backfills.status IN ('done', 'failed')"
    cur = await conn.execute(
        "INSERT INTO backfills (shop, since, status) VALUES (%s, %s, 'running')"
        " ON CONFLICT (shop) DO UPDATE SET status = 'running', updated_at = now(),"
        f"  since = CASE WHEN {fresh} THEN excluded.since ELSE backfills.since END,"
        f"  orders_applied = CASE WHEN {fresh} THEN 0 ELSE backfills.orders_applied END,"
        f"  lines_applied = CASE WHEN {fresh} THEN 0 ELSE backfills.lines_applied END,"
        f"  started_at = CASE WHEN {fresh} THEN now() ELSE backfills.started_at END,"
        f"  operation_id = CASE WHEN {fresh} THEN NULL ELSE backfills.operation_id END,"
        f"  export_url = CASE WHEN {fresh} THEN NULL ELSE backfills.export_url END,"
        f"  objects_total = CASE WHEN {fresh} THEN NULL ELSE backfills.objects_total END,"
        "   phase = 'locations', objects_read = 0, error = NULL, finished_at = NULL"
        " RETURNING *",
        (shop, since),
    )
    row = await cur.fetchone()
    assert row is not None
    return row


async def progress(
    conn: DictConnection, shop: str, phase: str, read: int, total: int | None
) -> None:
    """Which export is being read and how far (lines of it, of ``total``)."""
    await conn.execute(
        "UPDATE backfills SET phase = %s, objects_read = %s, objects_total = %s,"
        " updated_at = now() WHERE shop = %s",
        (phase, read, total, shop),
    )


async def orders_applied(conn: DictConnection, shop: str, orders: int, lines: int) -> None:
    """Orders of the current export applied so far (a resume skips them)."""
    await conn.execute(
        "UPDATE backfills SET orders_applied = %s, lines_applied = %s, updated_at = now()"
        " WHERE shop = %s",
        (orders, lines, shop),
    )


async def finish(conn: DictConnection, shop: str, error: str | None = None) -> None:
    await conn.execute(
        "UPDATE backfills SET status = %s, error = %s, finished_at = now(), updated_at = now()"
        " WHERE shop = %s",
        ("failed" if error else "done", error, shop),
    )


async def importing(conn: DictConnection, shop: str) -> bool:
    """Whether the shop's history is being imported (or waits to be)."""
    cur = await conn.execute(
        "SELECT 1 FROM backfills WHERE shop = %s AND status IN ('pending', 'running')", (shop,)
    )
    return await cur.fetchone() is not None


async def state(conn: DictConnection, shop: str) -> dict[str, Any] | None:
    cur = await conn.execute("SELECT * FROM backfills WHERE shop = %s", (shop,))
    return await cur.fetchone()


async def reading(conn: DictConnection, shop: str, operation_id: str, url: str | None) -> None:
    """Record which orders export is being read, and where its file is (a resume reads it
    again); nothing of it is applied yet."""
    await conn.execute(
        "UPDATE backfills SET operation_id = %s, export_url = %s, orders_applied = 0,"
        " lines_applied = 0 WHERE shop = %s",
        (operation_id, url, shop),
    )


async def request(conn: DictConnection, shop: str, since: date) -> None:
    """Ask the worker for a backfill of ``shop`` (after an OAuth install): done soon, once."""
    await conn.execute(
        "INSERT INTO backfills (shop, since, status) VALUES (%s, %s, 'pending')"
        " ON CONFLICT (shop) DO UPDATE SET status = 'pending', since = excluded.since,"
        "   updated_at = now() WHERE backfills.status <> 'running'",
        (shop, since),
    )


async def take_pending(conn: DictConnection) -> str | None:
    """A shop waiting for its backfill, marked running (inside the caller's transaction)."""
    cur = await conn.execute(
        "UPDATE backfills SET status = 'running', updated_at = now() WHERE shop = ("
        "  SELECT shop FROM backfills WHERE status = 'pending' ORDER BY updated_at"
        "  LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING shop"
    )
    row = await cur.fetchone()
    return row["shop"] if row else None


async def requeue_interrupted(conn: DictConnection) -> int:
    """Backfills a stopped worker left running go back in the queue (they resume)."""
    cur = await conn.execute(
        "UPDATE backfills SET status = 'pending', updated_at = now() WHERE status = 'running'"
    )
    return cur.rowcount
