"""The worker's side of the webhook inbox: republish what is unfinished, prune what is done.

The broker may lose acknowledged messages (Tansu keeps its log in memory; any broker can be
wiped), and a worker may die between its steps. Neither loses a webhook: its inbox row stays
unfinished until every event it became is applied, and the relay puts it back on
``shopify.webhooks`` with backoff. The idempotent write path makes a second copy harmless.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from connectors.db import inbox
from connectors.db.pool import DictConnection
from connectors.kafka.topics import dumps, shop_key

log = logging.getLogger("stockpulse.relay")

Send = Callable[[list[tuple[bytes, bytes]]], Awaitable[None]]


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
