"""The ``apply_sku_events`` agent: per-SKU events → PostgreSQL → ``stockpulse.updates``.

One transaction per batch: the write path's SQL functions (:mod:`connectors.db.ledger`), the
outbox rows of the SKUs that changed, and the updates read back; they are published after the
commit. A batch that fails for one of its events is split around it (:mod:`streams.poison`).
The SKUs that changed are owed fresh forecasts, which :mod:`streams.forecast_publishing` pays
off the apply path; their outbox rows are deleted once it has.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict
from functools import partial

import faust

from connectors.db import ledger
from connectors.kafka.topics import SkuEvent, dumps
from streams import poison
from streams.context import BATCH_MAX, BATCH_WITHIN_S, WorkerContext, send_all
from streams.publish import build_updates

log = logging.getLogger("stockpulse.worker")


def register(app: faust.App, ctx: WorkerContext) -> None:
    @app.agent(ctx.topics.sku_events)
    async def apply_sku_events(stream: faust.StreamT) -> None:
        async for batch in stream.take(BATCH_MAX, within=BATCH_WITHIN_S):
            events = []
            for raw in batch:
                try:
                    events.append(SkuEvent.model_validate_json(raw))
                except ValueError as exc:
                    # Only this worker writes the topic, so this is a bug, not outside data.
                    log.error("dropping unreadable sku event: %s", exc)
            if events:
                await poison.retrying(
                    "applying sku events",
                    partial(
                        poison.isolating,
                        events,
                        partial(_apply_batch, ctx),
                        partial(_set_aside, ctx),
                    ),
                )
                ctx.forecasts_wanted.set()


async def _apply_batch(ctx: WorkerContext, events: Sequence[SkuEvent]) -> None:
    done = ctx.published.take()
    try:
        async with ctx.connection() as conn, conn.transaction():
            if done:
                await ledger.delete_outbox(conn, done)
            changes, outbox = await ledger.apply_events(conn, events, ctx.outbox_owner)
            # Read inside the transaction (it sees its own writes); publish after commit.
            updates = await build_updates(conn, [asdict(t) for t in changes])
    except BaseException:
        ctx.published.add(done)
        raise
    await ctx.note_progress("apply")
    await send_all(ctx.topics.updates, [(key, dumps(update)) for key, update in updates])
    # The outbox rows wait for the forecasts too (:class:`streams.context.OwedForecasts`).
    for row in outbox:
        ctx.forecasts_owed.owe(row.shop, row.variant_id, [row.id])


async def _set_aside(ctx: WorkerContext, event: SkuEvent, error: BaseException) -> None:
    try:
        async with ctx.connection() as conn, conn.transaction():
            await ledger.dead_letter(conn, event, error)
    except Exception as exc:
        if poison.is_infrastructure(exc):
            raise
        # Even its dead letter is refused: keep what can be kept rather than stall on it.
        async with ctx.connection() as conn, conn.transaction():
            await ledger.dead_letter(conn, event.model_copy(update={"data": {}}), error)
    await ctx.note_progress("apply")
