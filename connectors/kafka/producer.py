"""A durable Kafka producer for asyncio code.

kafka-python's producer is used because its idempotent mode works against every broker we run
(aiokafka's InitProducerId fails on Tansu). Its sender thread does the I/O; results are handed
back to the event loop, so ``send_batch`` returns only once the broker acknowledged them all
(acks=all).
"""

from __future__ import annotations

import asyncio
import logging

from kafka import KafkaProducer
from kafka.errors import KafkaError

log = logging.getLogger(__name__)


class BrokerUnavailable(Exception):
    """The message was not acknowledged by the broker; the caller must not report success."""


class DurableProducer:
    def __init__(self, bootstrap_servers: list[str], *, timeout_s: float = 3.0) -> None:
        self._bootstrap_servers = bootstrap_servers
        self._timeout_s = timeout_s
        self._producer: KafkaProducer | None = None
        self._lock = asyncio.Lock()

    async def _get(self) -> KafkaProducer:
        if self._producer is not None:
            return self._producer
        async with self._lock:
            if self._producer is None:
                self._producer = await asyncio.to_thread(self._connect)
            return self._producer

    def _connect(self) -> KafkaProducer:
        try:
            return KafkaProducer(
                bootstrap_servers=self._bootstrap_servers,
                acks="all",
                enable_idempotence=True,
                linger_ms=1,
                # Shopify waits 5 s for our answer; give up well before so it can retry.
                max_block_ms=int(self._timeout_s * 1000),
                request_timeout_ms=int(self._timeout_s * 1000),
                delivery_timeout_ms=int(self._timeout_s * 1000) + 100,
                retry_backoff_ms=50,
                reconnect_backoff_max_ms=1000,
            )
        except KafkaError as exc:
            raise BrokerUnavailable(str(exc)) from exc

    async def send_batch(self, topic: str, messages: list[tuple[bytes | None, bytes]]) -> None:
        """Produce ``(key, value)`` messages and wait until the broker acknowledged all of them.

        The client's calls run in a thread: kafka-python's ``send`` blocks its caller while it
        waits for metadata, and an event loop must never wait on a broker that is away.
        """
        producer = await self._get()

        def produce_and_wait() -> None:
            records = [producer.send(topic, value=value, key=key) for key, value in messages]
            producer.flush(timeout=self._timeout_s)
            for record in records:
                record.get(timeout=0)  # raises the delivery error, if any

        try:
            await asyncio.to_thread(produce_and_wait)
        except Exception as exc:
            self._discard(producer)
            raise BrokerUnavailable(str(exc) or type(exc).__name__) from exc

    def _discard(self, producer: KafkaProducer) -> None:
        """Drop a client that failed: after some errors (a broker that lost our producer id,
        for one) kafka-python's idempotent producer stays failed for good, so the next send
        starts a fresh one."""

        def close() -> None:
            # Its unsent records are expected to fail (they failed already): the error is no
            # news, and unread it left a "Future exception was never retrieved" traceback in
            # the log whenever the broker went away (an outside test).
            try:
                producer.close(0)
            except KafkaError as exc:
                log.info("discarded a failed Kafka client: %s", exc)

        if self._producer is producer:
            self._producer = None
            asyncio.get_running_loop().run_in_executor(None, close)

    async def close(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await asyncio.to_thread(producer.close, 2)
