"""The worker's side of the webhook inbox: republish what is unfinished, prune what is done.

The broker may lose acknowledged messages (Tansu keeps its log in memory; any broker can be
wiped), and a worker may die between its steps. Neither loses a webhook: its inbox row stays
unfinished until every event it became is applied, and the relay puts it back on
``shopify.webhooks`` with backoff. The idempotent write path makes a second copy harmless.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from functools import partial

import faust

from connectors.db import inbox
from connectors.db.pool import DictConnection
from connectors.kafka.topics import dumps, shop_key
from connectors.outages import log_failure
from streams.context import WorkerContext, send_all

log = logging.getLogger("stockpulse.relay")

Send = Callable[[list[tuple[bytes, bytes]]], Awaitable[None]]
RELAY_CHECK_S = 2.0
PRUNE_S = 30.0


def register(app: faust.App, ctx: WorkerContext) -> None:
    """The relay every :data:`RELAY_CHECK_S`, the pruning every :data:`PRUNE_S`."""

    # A broker that forgets on restart may have come back empty just before this worker: what
    # was published before now is gone, and waiting out the backoff for it (20 s and more)
    # only delays a backlog that a full restart of `up` must apply before it is ready.
    lost_before = datetime.now(UTC) if ctx.settings.broker_forgets_on_restart else None

    @app.timer(interval=RELAY_CHECK_S)
    async def relay_unfinished_webhooks() -> None:
        """Put accepted webhooks the broker lost (or a crash stranded) back on the raw topic."""
        try:
            async with ctx.connection() as conn:
                await republish_unfinished(
                    conn, partial(send_all, ctx.topics.raw_webhooks), lost_before
                )
        except Exception:
            log_failure(log, "relaying unfinished webhooks failed; will retry")

    @app.timer(interval=PRUNE_S)
    async def prune_inbox() -> None:
        try:
            async with ctx.connection() as conn:
                await prune_finished(conn)
        except Exception:
            log_failure(log, "pruning the webhook inbox failed; will retry")


async def republish_unfinished(
    conn: DictConnection, send: Send, lost_before: datetime | None = None
) -> int:
    """Republish due unfinished webhooks; counted as attempts only once the broker has them."""
    republished = 0
    while True:
        rows = await inbox.take_unfinished(conn, lost_before=lost_before)
        if not rows:
            await conn.commit()
            return republished
        try:
            await send([(shop_key(r.shop), dumps(r.envelope())) for r in rows])
        except BaseException:
            await conn.rollback()
            raise
        await conn.commit()
        republished += len(rows)
        log.warning("republished %d unfinished webhooks from the inbox", len(rows))


async def prune_finished(conn: DictConnection) -> int:
    pruned = await inbox.prune(conn)
    await conn.commit()
    return pruned
