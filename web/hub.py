"""Fan Stockpulse's public topics out to the WebSocket feeds of this web instance.

Each web instance reads every partition itself (no consumer group), so behind a load balancer
every instance delivers every update to its own sockets. Each socket has a bounded backlog: a
slow client loses its oldest messages (they carry absolute values, so later ones supersede them)
and never holds up the others.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import defaultdict, deque

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError

from connectors.kafka.topics import ALERTS, FORECASTS, UPDATES
from web import metrics

log = logging.getLogger(__name__)

FEED_TOPICS = (UPDATES, FORECASTS, ALERTS)


class Subscriber:
    def __init__(self, shop: str, backlog: int) -> None:
        self.shop = shop
        self._queue: deque[str] = deque(maxlen=backlog)
        self._ready = asyncio.Event()
        self.dropped = 0

    def offer(self, message: str) -> None:
        if len(self._queue) == self._queue.maxlen:
            self.dropped += 1
            metrics.socket_dropped.inc()
        self._queue.append(message)
        self._ready.set()

    async def drain(self) -> list[str]:
        """Wait for messages, then take all that are waiting."""
        await self._ready.wait()
        self._ready.clear()
        messages = list(self._queue)
        self._queue.clear()
        return messages


class Hub:
    def __init__(self, backlog: int) -> None:
        self._backlog = backlog
        self._subscribers: dict[str, set[Subscriber]] = defaultdict(set)
        self.consuming = asyncio.Event()

    def subscribe(self, shop: str) -> Subscriber:
        subscriber = Subscriber(shop, self._backlog)
        self._subscribers[shop].add(subscriber)
        metrics.sockets.inc()
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        subs = self._subscribers.get(subscriber.shop)
        if subs is not None and subscriber in subs:
            subs.discard(subscriber)
            metrics.sockets.dec()
            if not subs:
                del self._subscribers[subscriber.shop]

    def dispatch(self, raw: bytes) -> None:
        try:
            shop = json.loads(raw)["shop"]
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring a feed message without a shop")
            return
        subs = self._subscribers.get(shop)
        if not subs:
            return
        text = raw.decode()
        for subscriber in subs:
            subscriber.offer(text)

    async def run(self, bootstrap_servers: list[str]) -> None:
        """Consume the feed topics until cancelled, reconnecting after broker outages."""
        delay = 0.2
        while True:
            consumer = AIOKafkaConsumer(
                *FEED_TOPICS,
                bootstrap_servers=bootstrap_servers,
                group_id=None,
                auto_offset_reset="latest",
                enable_auto_commit=False,
                fetch_max_wait_ms=20,
                retry_backoff_ms=500,  # during a broker outage, retry without flooding the log
            )
            try:
                await consumer.start()
                self.consuming.set()
                delay = 0.2
                while True:
                    batches = await consumer.getmany(timeout_ms=1000, max_records=1000)
                    for records in batches.values():
                        for record in records:
                            metrics.hub_messages.inc()
                            if record.value is not None:
                                self.dispatch(record.value)
            except asyncio.CancelledError:
                raise
            except (KafkaError, OSError) as exc:
                self.consuming.clear()
                log.warning("feed consumer lost the broker (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
            finally:
                await consumer.stop()
