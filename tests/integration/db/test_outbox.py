"""Which outbox rows a worker takes as left behind: a crashed writer's at once, a live one's
only once they are old (the writer hangs)."""

from __future__ import annotations

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from connectors.db import ledger
from connectors.db.pool import DictConnection


async def _row(conn: DictConnection, shop: str, owner: int | None, age_s: float = 0) -> int:
    cur = await conn.execute(
        "INSERT INTO update_outbox (shop, variant_id, type, owner, created_at)"
        " VALUES (%s, 1, 'stock', %s, now() - make_interval(secs => %s)) RETURNING id",
        (shop, owner, age_s),
    )
    row = await cur.fetchone()
    assert row is not None
    return int(row["id"])


async def _taken(conn: DictConnection, taker: int | None) -> set[int]:
    async with conn.transaction():
        rows = await ledger.take_stale_outbox(conn, 15.0, owner=taker)
    return {r["id"] for r in rows}


async def test_a_crashed_writers_rows_are_taken_at_once_a_live_ones_once_old(
    conn: DictConnection, shop: str, database_url: str
) -> None:
    writer = await AsyncConnection.connect(database_url, row_factory=dict_row, autocommit=True)
    taker = await AsyncConnection.connect(database_url, row_factory=dict_row, autocommit=True)
    try:
        owner = await ledger.hold_outbox_owner(writer)
        taker_key = await ledger.hold_outbox_owner(taker)
        fresh = await _row(conn, shop, owner)
        old = await _row(conn, shop, owner, age_s=60)
        by_command = await _row(conn, shop, None)
        taken = await _taken(conn, taker_key)
        assert old in taken and by_command in taken
        assert fresh not in taken, "a live worker's new row was taken from it"

        # What the taker leased is its own now: not taken again while it lives.
        assert not {old, by_command} & await _taken(conn, None)

        await writer.close()  # the writer crashed: its lock went with its connection
        assert fresh in await _taken(conn, taker_key)

        await taker.close()
        assert {fresh, old, by_command} <= await _taken(conn, None)
    finally:
        await writer.close()
        await taker.close()
