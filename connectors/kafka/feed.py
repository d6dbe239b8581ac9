"""Read Stockpulse's public topics from the latest offset, for live fan-out (no consumer group).

Every reader sees every partition, so any number of web instances each serve their own sockets.
Broker outages are waited out with backoff; only cancellation ends the loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

log = logging.getLogger(__name__)


async def follow(
    bootstrap_servers: list[str],
    topics: Sequence[str],
    on_value: Callable[[bytes], None],
    on_connected: Callable[[bool], None] = lambda _: None,
) -> None:
    """Call ``on_value`` for every message published from now on, until cancelled;
    ``on_connected`` hears when the reader gains or loses the broker."""
    delay = 0.2
    while True:
        consumer = AIOKafkaConsumer(
            *topics,
            bootstrap_servers=bootstrap_servers,
            group_id=None,
            auto_offset_reset="latest",
            enable_auto_commit=False,
            fetch_max_wait_ms=20,
            retry_backoff_ms=500,  # during a broker outage, retry without flooding the log
        )
        try:
            await consumer.start()
            on_connected(True)
            delay = 0.2
            while True:
                batches = await consumer.getmany(timeout_ms=1000, max_records=1000)
                for records in batches.values():
                    for record in records:
                        if record.value is not None:
                            on_value(record.value)
                if not batches:
                    await _follow_a_restarted_log(consumer)
        except asyncio.CancelledError:
            raise
        except (KafkaError, OSError) as exc:
            on_connected(False)
            log.warning("feed reader lost the broker (%s); retrying in %.1fs", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
        finally:
            await consumer.stop()


async def _follow_a_restarted_log(consumer: AIOKafkaConsumer) -> None:
    """A broker that lost its log (the embedded one keeps it in memory) starts its offsets
    again at zero and answers reads past its end with nothing, not "out of range": a reader
    would then wait for the new log to pass its old position. Read such a log from its start:
    it holds only what was published since, and updates carry absolute values."""
    for partition in consumer.assignment():
        end = consumer.highwater(partition)
        if end is not None and await consumer.position(partition) > end:
            log.warning("%s restarted from offset 0; reading it from the start", partition)
            consumer.seek(partition, 0)


async def topics_empty(bootstrap_servers: list[str], topics: Sequence[str]) -> bool:
    """Whether nothing was ever published on ``topics`` in this broker's log (a broker that
    keeps its log in memory comes back from a restart so). A topic whose partitions the
    broker does not list counts as not empty: not knowing is no reason to publish it all."""
    consumer = AIOKafkaConsumer(*topics, bootstrap_servers=bootstrap_servers, group_id=None)
    await consumer.start()
    try:
        by_topic = {topic: consumer.partitions_for_topic(topic) for topic in topics}
        if not all(by_topic.values()):
            return False
        partitions = [TopicPartition(t, p) for t, ps in by_topic.items() for p in ps or ()]
        ends = await consumer.end_offsets(partitions)
        return not any(ends.values())
    finally:
        await consumer.stop()
