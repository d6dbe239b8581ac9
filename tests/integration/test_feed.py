"""The live feed reader against a real broker that restarts with its log lost."""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiokafka import AIOKafkaProducer

from connectors.kafka.admin import ensure_topics
from connectors.kafka.feed import follow
from connectors.kafka.topics import UPDATES
from ops.embedded import LocalBroker


async def _publish(bootstrap: str, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(UPDATES, value, partition=0)
    finally:
        await producer.stop()


async def test_the_feed_follows_a_broker_that_restarted_with_an_empty_log(tmp_path: Path) -> None:
    broker = LocalBroker(log_path=tmp_path / "broker.log")
    broker.start()
    try:
        ensure_topics([broker.bootstrap], 1)
        seen: list[bytes] = []
        reader = asyncio.create_task(follow([broker.bootstrap], [UPDATES], seen.append))
        await asyncio.sleep(3)  # the reader starts at the end of the log
        await _publish(broker.bootstrap, [b"before-%d" % i for i in range(20)])
        for _ in range(100):
            if len(seen) == 20:
                break
            await asyncio.sleep(0.1)
        assert len(seen) == 20

        # The embedded broker keeps its log in memory: back on the same port, it starts at 0,
        # below where the reader was.
        broker.stop()
        broker.start()
        ensure_topics([broker.bootstrap], 1)
        await _publish(broker.bootstrap, [b"after"])
        for _ in range(300):
            if b"after" in seen:
                break
            await asyncio.sleep(0.1)
        assert b"after" in seen, "the reader waited for the new log to pass its old offset"
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
    finally:
        broker.stop()
