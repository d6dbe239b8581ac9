"""Which shops are due a reconciliation, one pass per shop at a time, and the corrections a
batch of Shopify's state makes, found by comparing before and after."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from connectors.crypto import Keyring, generate_key
from connectors.db import credentials, reconciliations
from connectors.db.pool import DictConnection
from connectors.db.reconciliations import Snapshot


async def _connect(conn: DictConnection, shop: str) -> None:
    ring = Keyring.parse(generate_key())
    await credentials.save(
        conn,
        ring,
        credentials.Credentials(
            shop=shop, mode="static", access_token="shpat_x", client_secret="s"
        ),
    )


async def _due(conn: DictConnection, shop: str, interval: timedelta) -> bool:
    return shop in await reconciliations.due(conn, interval)


async def test_a_connected_shop_is_due_an_interval_after_its_install_then_after_each_pass(
    conn: DictConnection, shop: str
) -> None:
    assert not await _due(conn, shop, timedelta(0))  # not connected: nothing to ask Shopify
    await _connect(conn, shop)
    assert not await _due(conn, shop, timedelta(hours=1))
    assert await _due(conn, shop, timedelta(0))
    first = await reconciliations.claim(conn, shop)
    assert first is not None
    assert await reconciliations.claim(conn, shop) is None  # one pass at a time
    assert not await _due(conn, shop, timedelta(0))  # running
    await reconciliations.finish(conn, first, levels=3, orders=2)
    assert not await _due(conn, shop, timedelta(hours=1))
    assert await _due(conn, shop, timedelta(0))
    second = await reconciliations.claim(conn, shop)
    assert second is not None
    row = await reconciliations.get(conn, second)
    done = await reconciliations.get(conn, first)
    assert row is not None and done is not None
    # Orders are compared from a little before the last successful pass began.
    assert row["orders_since"] == done["started_at"] - reconciliations.OVERLAP


async def test_a_shop_is_not_reconciled_while_its_history_is_backfilled(
    conn: DictConnection, shop: str
) -> None:
    await _connect(conn, shop)
    await conn.execute(
        "INSERT INTO backfills (shop, since, status) VALUES (%s, '2025-01-01', 'running')", (shop,)
    )
    assert not await _due(conn, shop, timedelta(0))
    await conn.execute(
        "UPDATE backfills SET status = 'done', finished_at = now() WHERE shop = %s", (shop,)
    )
    assert await _due(conn, shop, timedelta(0))
    assert not await _due(conn, shop, timedelta(minutes=30))


async def test_an_uninstalled_shop_is_never_due(conn: DictConnection, shop: str) -> None:
    await _connect(conn, shop)
    await conn.execute("UPDATE shops SET uninstalled_at = now() WHERE domain = %s", (shop,))
    assert not await _due(conn, shop, timedelta(0))


def test_differences_name_what_changed_and_the_webhook_that_was_missed() -> None:
    before = Snapshot(
        lines={10: (1, 100, 2), 11: (1, 101, 1)},
        levels={(500, 9): 7, (501, 9): 3},
        variants={100: ("TEE", "Tee", "M", "20.00")},
    )
    after = Snapshot(
        lines={10: (1, 100, 1), 11: (1, 101, 1), 12: (2, 100, 3)},
        levels={(500, 9): 4, (501, 9): 3, (502, 9): 8},
        variants={100: ("TEE", "Tee", "M", "22.00"), 101: ("CAP", "Cap", "", "9.00")},
    )
    found = {(c.kind, c.subject): c for c in reconciliations.differences(before, after)}
    assert set(found) == {
        ("order_line", "order 1 line 10 (variant 100)"),
        ("order_line", "order 2 line 12 (variant 100)"),
        ("stock_level", "inventory item 500 at location 9"),
        ("stock_level", "inventory item 502 at location 9"),
        ("variant", "variant 100"),
        ("variant", "variant 101"),
    }
    edited = found[("order_line", "order 1 line 10 (variant 100)")]
    assert (edited.old, edited.new) == ("2 units", "1 units")
    assert "edit" in edited.reason
    missing = found[("order_line", "order 2 line 12 (variant 100)")]
    assert missing.old is None and "orders/create" in missing.reason
    stale = found[("stock_level", "inventory item 500 at location 9")]
    assert (stale.old, stale.new) == ("7", "4") and "inventory_levels/update" in stale.reason


async def test_a_pass_counts_as_running_while_its_process_lives_and_no_longer(
    conn: DictConnection, shop: str, database_url: str
) -> None:
    """A pass's process holds its shop's pass lock; one killed releases it with its session.
    The sweep ends the killed one's pass as failed, and leaves a live one's alone, even when
    it runs in another process than the sweeper's (a `stockpulse reconcile` beside a worker)."""
    from psycopg import AsyncConnection
    from psycopg.rows import dict_row

    await _connect(conn, shop)
    process = await AsyncConnection.connect(database_url, row_factory=dict_row, autocommit=True)
    assert await reconciliations.take_pass_lock(process, shop)
    live = await reconciliations.claim(process, shop)
    assert live is not None
    assert not await reconciliations.take_pass_lock(conn, shop)  # another session has it
    async with conn.transaction():
        assert await reconciliations.abandon_orphans(conn, "gone", shop=shop) == 0
    assert (await reconciliations.get(conn, live) or {})["status"] == "running"

    await process.close()  # as a SIGKILL ends it: PostgreSQL releases the lock…
    for _ in range(100):  # …once its backend has noticed and exited
        async with conn.transaction():
            if await reconciliations.abandon_orphans(conn, "gone", shop=shop):
                break
        await asyncio.sleep(0.05)
    row = await reconciliations.get(conn, live)
    assert row is not None and row["status"] == "failed" and row["error"] == "gone"
    # The lock the sweep took to look is released again; the next pass can be claimed.
    assert await reconciliations.claim(conn, shop) is not None
    other = await AsyncConnection.connect(database_url, row_factory=dict_row, autocommit=True)
    try:
        assert await reconciliations.take_pass_lock(other, shop)
    finally:
        await other.close()
