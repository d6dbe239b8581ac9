"""Publish what a crashed worker committed but never published.

The apply agent writes an outbox row per changed SKU in the transaction that changes it, and
deletes it once the update and then the SKU's forecast are published
(:class:`streams.context.OwedForecasts`). A row older than :data:`STALE_OUTBOX_S` was left by
a worker that crashed in between, or written by a command (a replay, a reconciliation, an
export): this timer publishes its update from the current numbers and owes its forecast, and
the row goes once that is published.
"""

from __future__ import annotations

import logging
from functools import partial

import faust

from connectors.db import ledger
from connectors.kafka.feed import topics_empty
from connectors.kafka.topics import FORECASTS, UPDATES, dumps
from connectors.outages import log_failure
from streams.context import WorkerContext, send_all
from streams.poison import retrying
from streams.publish import build_updates

log = logging.getLogger("stockpulse.worker")

FLUSH_EVERY_S = 5.0
# Older than this, an outbox row was left by a worker that crashed: its owner deletes its own
# rows within FLUSH_EVERY_S (the timer below), so a healthy worker's rows are never taken.
STALE_OUTBOX_S = 15.0


def register(app: faust.App, ctx: WorkerContext) -> None:
    if ctx.settings.broker_forgets_on_restart:

        @app.task
        async def refill_public_topics() -> None:
            """A broker that forgets on restart may have come back empty with this worker:
            then every SKU's update and forecast are published again, as the latest per key
            must be there for consumers (an outside test read 25 of 64 SKUs after a
            restart). Alerts are not: the alerts table and API keep them."""
            await retrying("refilling the public topics", partial(_refill_if_empty, ctx))

    @app.timer(interval=FLUSH_EVERY_S)
    async def flush_stale_outbox() -> None:
        """Delete what this worker published; publish what a crashed worker left."""
        try:
            await _flush(ctx)
        except Exception:
            log_failure(log, "flushing the outbox failed; will retry")


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
        rows = await ledger.take_stale_outbox(conn, STALE_OUTBOX_S, mine)
        if not rows:
            return
        updates = await build_updates(conn, rows)
        await send_all(ctx.topics.updates, [(key, dumps(update)) for key, update in updates])
        await conn.commit()
    for row in rows:
        ctx.forecasts_owed.owe(row["shop"], row["variant_id"], [row["id"]])
    ctx.forecasts_wanted.set()
    log.info("published %d updates left in the outbox; their forecasts follow", len(rows))
