"""Publish what a crashed worker committed but never published.

The apply agent writes an outbox row per changed SKU in the transaction that changes it, and
deletes it once the update and then the SKU's forecast are published
(:class:`streams.context.OwedForecasts`). A row whose writer no longer holds its owner lock
was left by a worker that crashed in between (one older than :data:`STALE_OUTBOX_S`, by one
that hangs), or written by a command (a replay, a reconciliation, an export): this timer
publishes its update from the current numbers and owes its forecast, and the row goes once
that is published.
"""

from __future__ import annotations

import asyncio
import logging
from functools import partial

import faust
from psycopg import AsyncConnection
from psycopg.rows import dict_row

from connectors.db import ledger
from connectors.kafka.feed import topics_empty
from connectors.kafka.topics import FORECASTS, UPDATES, dumps
from connectors.outages import log_failure
from streams.context import WorkerContext, send_all
from streams.poison import retrying
from streams.publish import build_updates

log = logging.getLogger("stockpulse.worker")

FLUSH_EVERY_S = 5.0
# Older than this, an outbox row was left by a worker that crashed or hangs: its owner deletes
# its own rows within FLUSH_EVERY_S (the timer below), so a healthy worker's rows are never
# taken. A crashed worker's rows go sooner, as its owner lock goes with its connection.
STALE_OUTBOX_S = 15.0
# How often the owner lock's connection is checked, and a lost one opened again.
OWNER_CHECK_S = 10.0


def register(app: faust.App, ctx: WorkerContext) -> None:
    if ctx.settings.broker_forgets_on_restart:

        @app.task
        async def refill_public_topics() -> None:
            """A broker that forgets on restart may have come back empty with this worker:
            then every SKU's update and forecast are published again, as the latest per key
            must be there for consumers (an outside test read 25 of 64 SKUs after a
            restart). Alerts are not: the alerts table and API keep them."""
            await retrying("refilling the public topics", partial(_refill_if_empty, ctx))

    @app.task
    async def hold_outbox_owner() -> None:
        """Hold this worker's outbox owner lock while it lives (see ledger.take_stale_outbox):
        the next worker then publishes what this one leaves at once, not 15 s later."""
        while True:
            try:
                await _hold_owner(ctx)
            except Exception:
                log_failure(log, "holding the outbox owner lock failed; will retry")
            ctx.outbox_owner = None
            await asyncio.sleep(OWNER_CHECK_S)

    @app.timer(interval=FLUSH_EVERY_S)
    async def flush_stale_outbox() -> None:
        """Delete what this worker published; publish what a crashed worker left."""
        await _flush_logged(ctx)


async def _flush_logged(ctx: WorkerContext) -> None:
    try:
        await _flush(ctx)
    except Exception:
        log_failure(log, "flushing the outbox failed; will retry")


async def _hold_owner(ctx: WorkerContext) -> None:
    """Take an owner key and hold its lock until the connection fails (the database went
    away: a new key is taken, as the old session may linger on the server)."""
    async with await AsyncConnection.connect(
        ctx.settings.database_url, row_factory=dict_row, autocommit=True
    ) as conn:
        ctx.outbox_owner = await ledger.hold_outbox_owner(conn)
        try:
            # At once, not a timer's interval later: Faust starts its tasks only after its
            # first rebalance, which waits out a crashed predecessor's session (about 20 s
            # after the crash), and what that worker left is due by then.
            await _flush_logged(ctx)
            while True:
                await asyncio.sleep(OWNER_CHECK_S)
                await conn.execute("SELECT 1")
        finally:
            ctx.outbox_owner = None


async def _refill_if_empty(ctx: WorkerContext) -> None:
    if not await topics_empty(ctx.settings.bootstrap_servers, (UPDATES, FORECASTS)):
        return
    async with ctx.connection() as conn:
        queued = await ledger.queue_every_sku(conn, STALE_OUTBOX_S)
        await conn.commit()
    log.warning("the broker came back empty: publishing every SKU again (%d)", queued)


async def _flush(ctx: WorkerContext) -> None:
    async with ctx.connection() as conn:
        done = ctx.published.take()
        if done:
            try:
                await ledger.delete_outbox(conn, done)
                await conn.commit()
            except BaseException:
                ctx.published.add(done)
                raise
        # This worker's own rows are not stale however old: their forecasts are owed or being
        # made, or they are published and wait for their delete.
        mine = ctx.forecasts_owed.outbox_ids() | ctx.published.waiting()
        rows = await ledger.take_stale_outbox(conn, STALE_OUTBOX_S, mine, owner=ctx.outbox_owner)
        if not rows:
            return
        updates = await build_updates(conn, rows)
        await send_all(ctx.topics.updates, [(key, dumps(update)) for key, update in updates])
        await conn.commit()
    for row in rows:
        ctx.forecasts_owed.owe(row["shop"], row["variant_id"], [row["id"]])
    ctx.forecasts_wanted.set()
    log.info("published %d updates left in the outbox; their forecasts follow", len(rows))
