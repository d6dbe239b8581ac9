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

from connectors.kafka import feed
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

    def _dispatch_counted(self, raw: bytes) -> None:
        metrics.hub_messages.inc()
        self.dispatch(raw)

    def _connected(self, up: bool) -> None:
        if up:
            self.consuming.set()
        else:
            self.consuming.clear()

    async def run(self, bootstrap_servers: list[str]) -> None:
        """Fan the feed topics out until cancelled, through broker outages."""
        await feed.follow(bootstrap_servers, FEED_TOPICS, self._dispatch_counted, self._connected)
