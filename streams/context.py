"""What the worker's agents and timers share, made once per app by :func:`streams.worker.build_app`.

Passed explicitly to each module's ``register(app, ctx)``: nothing is created at import time, so
importing a module of the worker starts nothing and two apps (in a test) share nothing.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import faust
from psycopg_pool import AsyncConnectionPool

from connectors.db import inbox
from connectors.db.pool import DictConnection, open_pool
from connectors.settings import Settings
from streams.forecasting import ForecastKeeper

# The agents read in batches of up to BATCH_MAX messages, waiting at most BATCH_WITHIN_S for
# one to fill: one transaction serves many events under load, and a lone event waits 10 ms.
BATCH_MAX = 500
BATCH_WITHIN_S = 0.01
PROGRESS_EVERY_S = 1.0  # /readyz's stall needs STALL_SECONDS (60) without one

log = logging.getLogger("stockpulse.worker")


@dataclass(frozen=True)
class Topics:
    """The topics the worker reads and writes, as raw bytes (the values are our own JSON)."""

    raw_webhooks: faust.TopicT
    sku_events: faust.TopicT
    updates: faust.TopicT
    forecasts: faust.TopicT
    alerts: faust.TopicT


class PublishedOutbox:
    """Outbox rows whose updates the broker acknowledged. They are deleted in the next
    transaction rather than one of their own (one commit per batch); lost in a crash, they are
    only published once more. Callers take the ids before awaiting anything, so the agent and
    the timer never delete or drop each other's."""

    def __init__(self) -> None:
        self._ids: list[int] = []

    def add(self, ids: list[int]) -> None:
        self._ids.extend(ids)

    def take(self) -> list[int]:
        ids, self._ids = self._ids, []
        return ids

    def waiting(self) -> set[int]:
        return set(self._ids)


class OwedForecasts:
    """SKUs whose forecasts are due after their batch, by shop, each with the outbox rows that
    wait for it. An outbox row is deleted only once its SKU's forecast round has committed: a
    worker killed in between leaves it, and the next worker's outbox timer publishes its update
    and owes its forecast again. (Deleted when its update was published, a row left nothing
    behind: killed 0.1 s after a stock change, a worker never replanned the SKU nor alerted
    its shop; an outside test.)"""

    def __init__(self) -> None:
        self._owed: dict[str, dict[int, list[int]]] = {}
        self._in_round: set[int] = set()

    def __bool__(self) -> bool:
        return bool(self._owed)

    def owe(self, shop: str, variant_id: int, outbox_ids: Sequence[int] = ()) -> None:
        self._owed.setdefault(shop, {}).setdefault(variant_id, []).extend(outbox_ids)

    def take_shop(self) -> tuple[str, dict[int, list[int]]]:
        """The SKUs one shop owes, for a round that must :meth:`paid` or :meth:`put_back`
        them."""
        shop = next(iter(self._owed))
        by_sku = self._owed.pop(shop)
        self._in_round.update(i for ids in by_sku.values() for i in ids)
        return shop, by_sku

    def paid(self, by_sku: dict[int, list[int]]) -> list[int]:
        """The round committed: the outbox rows that waited for it, to delete."""
        ids = [i for ids in by_sku.values() for i in ids]
        self._in_round.difference_update(ids)
        return ids

    def put_back(self, shop: str, by_sku: dict[int, list[int]]) -> None:
        self.paid(by_sku)
        for variant_id, ids in by_sku.items():
            self.owe(shop, variant_id, ids)

    def outbox_ids(self) -> set[int]:
        """The outbox rows still waiting for a forecast, owed or in a round."""
        owed = {i for by_sku in self._owed.values() for ids in by_sku.values() for i in ids}
        return owed | self._in_round


CLOSE_WITHIN_S = 3.0


@dataclass
class WorkerContext:
    """The state of one worker app, shared by the agents and timers its modules register."""

    settings: Settings
    topics: Topics
    keeper: ForecastKeeper
    published: PublishedOutbox = field(default_factory=PublishedOutbox)
    # SKUs whose forecasts are due after their batch (or could not be refreshed: the timer
    # retries), and the signal that some are.
    forecasts_owed: OwedForecasts = field(default_factory=OwedForecasts)
    forecasts_wanted: asyncio.Event = field(default_factory=asyncio.Event)
    # One forecast round at a time: the keeper's cache is not shared safely, and two rounds
    # taking the same SKUs' correction and model rows in different orders deadlocked.
    forecast_round: asyncio.Lock = field(default_factory=asyncio.Lock)
    # The key of the advisory lock this worker holds while it lives, written on its outbox
    # rows (streams.outbox); None while it holds none.
    outbox_owner: int | None = None
    _pool: AsyncConnectionPool[DictConnection] | None = None
    _pool_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _progress_noted: dict[str, float] = field(default_factory=dict)

    async def note_progress(self, stage: str) -> None:
        """Tell /readyz that webhooks moved on at ``stage``, after the work's own commit and at
        most every PROGRESS_EVERY_S: a row every batch updated inside its transaction would
        make the batches of all workers wait on each other. Best effort: a note that cannot
        be written only makes a backlog look stalled for a while, never fails the work."""
        now = time.monotonic()
        if now - self._progress_noted.get(stage, -math.inf) < PROGRESS_EVERY_S:
            return
        self._progress_noted[stage] = now
        try:
            async with self.connection() as conn:
                await inbox.note_progress(conn, stage)
                await conn.commit()
        except Exception as exc:
            log.warning("could not note %s progress: %r", stage, exc)

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[DictConnection]:
        """A connection of the worker's pool, which opens on first use (in the running loop)."""
        async with self._pool_lock:
            if self._pool is None:
                self._pool = await open_pool(self.settings.database_url, max_size=4)
        async with self._pool.connection() as conn:
            yield conn

    async def close(self) -> None:
        """Close the pool, within CLOSE_WITHIN_S even when the database hangs: left open, its
        tasks were destroyed pending when the process ended, with tracebacks in the log."""
        if self._pool is not None:
            await self._pool.close(timeout=CLOSE_WITHIN_S)


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


async def send_all(topic: faust.TopicT, messages: Sequence[tuple[bytes, bytes]]) -> None:
    """Produce and wait for every acknowledgement.

    A broker that restarts fails the sends themselves as well as the acknowledgements of the
    ones already sent. Those are retrieved as they settle (the batch fails, and is retried, by
    the first error only): left alone, each logged an "exception was never retrieved"
    traceback, 27 in the worker's log after one broker restart in an outside test."""
    futures = []
    for key, value in messages:
        future = asyncio.ensure_future(await topic.send(key=key, value=value))
        future.add_done_callback(_retrieve)
        futures.append(future)
    await asyncio.gather(*futures)
