"""The worker's side of the webhook inbox: republish what is unfinished, prune what is done.

The broker may lose acknowledged messages (Tansu keeps its log in memory; any broker can be
wiped), and a worker may die between its steps. Neither loses a webhook: its inbox row stays
unfinished until every event it became is applied, and the relay puts it back on
``shopify.webhooks`` with backoff. The idempotent write path makes a second copy harmless.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from functools import partial

import faust

from connectors.db import inbox
from connectors.db.pool import DictConnection
from connectors.kafka.topics import dumps, shop_key
from streams.context import WorkerContext, send_all

log = logging.getLogger("stockpulse.relay")

Send = Callable[[list[tuple[bytes, bytes]]], Awaitable[None]]
RELAY_CHECK_S = 2.0
PRUNE_S = 30.0


def register(app: faust.App, ctx: WorkerContext) -> None:
    """The relay every :data:`RELAY_CHECK_S`, the pruning every :data:`PRUNE_S`."""

    @app.timer(interval=RELAY_CHECK_S)
    async def relay_unfinished_webhooks() -> None:
        """Put accepted webhooks the broker lost (or a crash stranded) back on the raw topic."""
        try:
            async with ctx.connection() as conn:
                await republish_unfinished(conn, partial(send_all, ctx.topics.raw_webhooks))
        except Exception:
            log.exception("relaying unfinished webhooks failed; will retry")

    @app.timer(interval=PRUNE_S)
    async def prune_inbox() -> None:
        try:
            async with ctx.connection() as conn:
                await prune_finished(conn)
        except Exception:
            log.exception("pruning the webhook inbox failed; will retry")


async def republish_unfinished(conn: DictConnection, send: Send) -> int:
    """Republish due unfinished webhooks; counted as attempts only once the broker has them."""
    republished = 0
    while True:
        rows = await inbox.take_unfinished(conn)
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
