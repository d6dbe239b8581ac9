"""A read a request waits for only so long, shared while it runs, and given up on at last."""

from __future__ import annotations

import asyncio
import time

import pytest

from web import shared_reads
from web.shared_reads import SharedRead


async def test_a_hung_read_costs_each_caller_its_wait_only_and_is_shared() -> None:
    released = asyncio.Event()
    started = 0

    async def read() -> str:
        nonlocal started
        started += 1
        await released.wait()
        return "fresh"

    shared = SharedRead(read, wait_s=0.2)
    for _ in range(3):
        began = time.monotonic()
        with pytest.raises(TimeoutError):
            await shared()
        assert time.monotonic() - began < 0.5
    assert started == 1  # the callers joined the read in flight
    released.set()
    assert await shared() == "fresh"
    assert await shared() == "fresh" and started == 2  # a finished read is not reused


async def test_a_read_hung_too_long_is_given_up_for_a_new_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(shared_reads, "ABANDON_S", 0.3)
    calls = 0

    async def read() -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            await asyncio.sleep(3600)  # a database gone without a reset
        return calls

    shared = SharedRead(read, wait_s=0.1)
    with pytest.raises(TimeoutError):
        await shared()
    await asyncio.sleep(0.3)
    assert await shared() == 2
