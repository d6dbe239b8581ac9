"""Database reads a request waits for only so long, and that outlive the requests waiting.

Cancelling a query on a database that hangs (paused, or gone without a reset) waits for that
database itself, about ten seconds in psycopg, so a request cannot simply time out its query.
Instead the read runs as a task of its own: requests wait for it a bounded time, a hung one
is shared by whoever comes next rather than piled up, and after a while it is given up on.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")
# A read still running after this long is given up on and another started: a connection to a
# database that vanished without a reset may hang for as long as TCP lets it.
ABANDON_S = 30.0


class SharedRead(Generic[T]):
    """``read()``, one run at a time, shared by every caller while it runs. A caller waits at
    most ``wait_s`` and then gets TimeoutError; the read goes on for the next one."""

    def __init__(self, read: Callable[[], Awaitable[T]], wait_s: float) -> None:
        self._read = read
        self.wait_s = wait_s
        self._task: asyncio.Task[T] | None = None
        self._began = 0.0

    async def __call__(self) -> T:
        task = self._task
        if task is None or task.done() or time.monotonic() - self._began > ABANDON_S:
            task = self._task = quietly(asyncio.ensure_future(self._read()))
            self._began = time.monotonic()
        return await within(self.wait_s, task)


async def within(seconds: float, task: asyncio.Task[T]) -> T:
    """``task``'s result, or TimeoutError after ``seconds``, leaving it running."""
    return await asyncio.wait_for(asyncio.shield(task), seconds)


def quietly(task: asyncio.Task[T]) -> asyncio.Task[T]:
    """A task whose failure its waiters report, and that is not logged again when nobody
    waits for it any more."""
    task.add_done_callback(lambda t: t.cancelled() or t.exception())
    return task
