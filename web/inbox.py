"""The ingress's side of the webhook inbox: group commits, and the fast path to Kafka.

Many webhooks arrive at once; each durable commit costs a WAL flush, so concurrent deliveries
are written by a few writer tasks in one statement and one commit per batch. Once committed, a
webhook is handed to the publisher, which produces it in the background: the 200 never waits for
the broker, and anything the publisher cannot deliver is republished by the worker's relay.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from psycopg_pool import AsyncConnectionPool

from connectors.db import inbox
from connectors.db.pool import DictConnection
from connectors.kafka.producer import BrokerUnavailable, DurableProducer
from connectors.kafka.topics import RAW_WEBHOOKS, dumps, shop_key
from connectors.outages import log_failure

log = logging.getLogger(__name__)

WRITERS = 3
MAX_BATCH = 256
MAX_WAITING = 20_000
PUBLISH_BATCH = 500
# After a failed produce the fast path rests this long; the relay covers what it skips.
PUBLISH_PAUSE_S = 5.0


class InboxFull(Exception):
    """More deliveries are waiting for the database than the ingress holds: answer 503."""


class InboxWriter:
    def __init__(self, pool: AsyncConnectionPool[DictConnection]) -> None:
        self._pool = pool
        self._waiting: asyncio.Queue[tuple[dict[str, Any], asyncio.Future[Any]]] = asyncio.Queue(
            MAX_WAITING
        )
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._write_forever()) for _ in range(WRITERS)]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def store(self, delivery: dict[str, Any]) -> inbox.InboxRow | None:
        """Commit one delivery durably; None when it was stored before (a redelivery).

        Raises whatever the database raised, or :class:`InboxFull`.
        """
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        try:
            self._waiting.put_nowait((delivery, done))
        except asyncio.QueueFull:
            raise InboxFull from None
        return await done

    async def _write_forever(self) -> None:
        while True:
            batch = [await self._waiting.get()]
            while len(batch) < MAX_BATCH and not self._waiting.empty():
                batch.append(self._waiting.get_nowait())
            # A caller that gave up (503) is still written: its retry then finds it stored.
            try:
                async with self._pool.connection() as conn, conn.transaction():
                    # Durable whatever the server's default: a 200 must survive a crash.
                    await conn.execute("SET LOCAL synchronous_commit = on")
                    rows = await inbox.insert(conn, [d for d, _ in batch])
                outcomes: list[tuple[asyncio.Future[Any], Any, BaseException | None]] = [
                    (done, row, None) for (_, done), row in zip(batch, rows, strict=True)
                ]
            except Exception as exc:  # this writer must outlive any one batch
                outcomes = [(done, None, exc) for _, done in batch]
            for done, row, error in outcomes:
                if done.done():
                    continue
                if error is None:
                    done.set_result(row)
                else:
                    done.set_exception(error)


class FastPublisher:
    """Produces committed webhooks to ``shopify.webhooks`` soon after their 200, best effort."""

    def __init__(self, producer: DurableProducer) -> None:
        self._producer = producer
        self._queue: asyncio.Queue[inbox.InboxRow] = asyncio.Queue(MAX_WAITING)
        self._task: asyncio.Task[None] | None = None
        self._paused_until = 0.0

    def start(self) -> None:
        self._task = asyncio.create_task(self._publish_forever())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def offer(self, row: inbox.InboxRow) -> None:
        if time.monotonic() < self._paused_until:
            return  # the broker was away a moment ago: leave it to the relay
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(row)

    async def _publish_forever(self) -> None:
        while True:
            rows = [await self._queue.get()]
            while len(rows) < PUBLISH_BATCH and not self._queue.empty():
                rows.append(self._queue.get_nowait())
            messages: list[tuple[bytes | None, bytes]] = [
                (shop_key(r.shop), dumps(r.envelope())) for r in rows
            ]
            try:
                await self._producer.send_batch(RAW_WEBHOOKS, messages)
            except BrokerUnavailable as exc:
                self._paused_until = time.monotonic() + PUBLISH_PAUSE_S
                dropped = len(rows) + self._queue.qsize()
                while not self._queue.empty():
                    self._queue.get_nowait()
                log.warning(
                    "broker unavailable (%s); %d committed webhooks left to the relay",
                    exc,
                    dropped,
                )
            except Exception:
                log_failure(log, "publishing committed webhooks failed; the relay will retry")
