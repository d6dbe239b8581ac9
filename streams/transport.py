"""Faust's aiokafka transport with a short consumer fetch wait.

Faust hard-codes ``fetch_max_wait_ms=1500``. A broker that holds a fetch until that wait runs
out (Tansu does, when little data is waiting) then adds up to 1.5 s to every hop of the pipeline;
the dashboard promises updates within a second. Selected by the ``stockpulse://`` broker scheme,
which :func:`broker_urls` registers with Faust when the worker's app is built.
"""

from __future__ import annotations

from typing import Any

from faust.transport import drivers
from faust.transport.drivers import aiokafka as faust_aiokafka

FETCH_MAX_WAIT_MS = 25


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # aiokafka reads this when the consumer starts, which happens after creation.
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS
        return consumer


class _Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> _ConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class Transport(faust_aiokafka.Transport):
    Consumer = _Consumer


SCHEME = "stockpulse"


def broker_urls(servers: list[str]) -> list[str]:
    """Faust broker URLs that select this transport for ``servers`` (``host:port``)."""
    drivers.TRANSPORTS.aliases[SCHEME] = f"{__name__}:Transport"  # idempotent
    return [f"{SCHEME}://{s}" for s in servers]
