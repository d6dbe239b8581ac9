from __future__ import annotations

import asyncio
import json

from web.hub import Hub


def message(shop: str, n: int) -> bytes:
    return json.dumps({"shop": shop, "n": n}).encode()


async def test_messages_reach_only_their_shops_subscribers() -> None:
    hub = Hub(backlog=10)
    mine, other = hub.subscribe("a.myshopify.com"), hub.subscribe("b.myshopify.com")
    hub.dispatch(message("a.myshopify.com", 1))
    assert [json.loads(m)["n"] for m in await mine.drain()] == [1]
    assert not other._queue


async def test_a_slow_socket_loses_its_oldest_messages_and_blocks_nobody() -> None:
    hub = Hub(backlog=3)
    slow, fast = hub.subscribe("a.myshopify.com"), hub.subscribe("a.myshopify.com")
    for n in range(10):
        hub.dispatch(message("a.myshopify.com", n))
        assert [json.loads(m)["n"] for m in await asyncio.wait_for(fast.drain(), 1)] == [n]
    assert [json.loads(m)["n"] for m in await slow.drain()] == [7, 8, 9]
    assert slow.dropped == 7


async def test_unsubscribed_sockets_get_nothing_and_bad_messages_are_ignored() -> None:
    hub = Hub(backlog=3)
    sub = hub.subscribe("a.myshopify.com")
    hub.unsubscribe(sub)
    hub.unsubscribe(sub)  # twice is harmless
    hub.dispatch(message("a.myshopify.com", 1))
    hub.dispatch(b"not json")
    assert not sub._queue
