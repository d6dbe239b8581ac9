"""Producing a batch while the broker goes away: the batch fails once, with nothing left
unretrieved for the event loop to log as a traceback per message."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest

from streams.context import send_all


class BrokerGoingAway:
    """Acknowledges each send with a future, as Faust's topic does; the send after
    ``refuse_from`` raises, as a producer whose broker went away does."""

    def __init__(self, refuse_from: int) -> None:
        self.futures: list[asyncio.Future[None]] = []
        self.refuse_from = refuse_from

    async def send(self, key: bytes, value: bytes) -> asyncio.Future[None]:
        if len(self.futures) >= self.refuse_from:
            raise ConnectionError("producer stopped")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.futures.append(future)
        return future


def _run(refuse_from: int) -> tuple[list[str], list[dict[str, Any]]]:
    unretrieved: list[dict[str, Any]] = []
    raised: list[str] = []  # not the exception: its traceback would keep the futures alive

    async def produce() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda _, ctx: unretrieved.append(ctx))
        topic = BrokerGoingAway(refuse_from)
        messages = [(b"k", b"%d" % i) for i in range(5)]
        sending = asyncio.ensure_future(send_all(topic, messages))  # type: ignore[arg-type]
        await asyncio.sleep(0)
        for i, future in enumerate(topic.futures):
            future.set_exception(ConnectionError(f"not acknowledged ({i})"))
        try:
            await sending
        except ConnectionError as exc:
            raised.append(str(exc))
        del topic, sending, future
        for _ in range(3):
            await asyncio.sleep(0)
        gc.collect()

    asyncio.run(produce())
    gc.collect()
    return raised, unretrieved


@pytest.mark.parametrize("refuse_from", [3, 5])
def test_a_failed_batch_raises_once_and_leaves_no_exception_unretrieved(refuse_from: int) -> None:
    raised, unretrieved = _run(refuse_from)
    assert len(raised) == 1
    assert unretrieved == [], [ctx.get("message") for ctx in unretrieved]
