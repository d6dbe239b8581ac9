"""Helpers of the tests that connect a store on a fake Shopify: the CLI as a user runs it,
webhooks signed with the store's own app secret, and the store's numbers on both sides."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from typing import Any

import httpx

from connectors.shopify.webhooks import sign
from ops.fake_shopify import FakeStore
from ops.stack import Stack
from tests.support import Ids, query


async def cli(stack: Stack, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ops.cli",
        *args,
        env={**os.environ, **stack.env()},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )


async def finished(process: asyncio.subprocess.Process, timeout_s: float = 240) -> str:
    """The process's output once it ended; on a timeout, what it said before it was stopped."""
    try:
        out, _ = await asyncio.wait_for(process.communicate(), timeout_s)
    except TimeoutError:
        process.send_signal(signal.SIGINT)
        out, _ = await asyncio.wait_for(process.communicate(), 30)
        raise AssertionError(f"still running after {timeout_s} s: {out.decode()[-4000:]}") from None
    assert process.returncode == 0, out.decode()[-3000:]
    return out.decode()


async def run(stack: Stack, *args: str) -> str:
    """``stockpulse ARGS`` to its end; its output."""
    return await finished(await cli(stack, *args))


async def post_signed(
    http: httpx.AsyncClient, stack: Stack, shop: str, topic: str, payload: Any, secret: str
) -> httpx.Response:
    """A webhook as Shopify sends it for ``shop``, signed with its app's ``secret``."""
    body = json.dumps(payload).encode()
    delivery = f"{topic}-{Ids.next()}"
    headers = {
        "Content-Type": "application/json",
        "X-Shopify-Topic": topic,
        "X-Shopify-Shop-Domain": shop,
        "X-Shopify-Event-Id": delivery,
        "X-Shopify-Webhook-Id": delivery,
        "X-Shopify-Hmac-Sha256": sign(body, secret.encode()),
    }
    return await http.post(f"{stack.base_url}/webhooks/shopify", content=body, headers=headers)


def units(stack: Stack, shop: str) -> dict[int, int]:
    rows = query(
        stack,
        "SELECT variant_id, sum(units) FROM daily_demand WHERE shop = %s GROUP BY 1",
        shop,
    )
    return {v: int(n) for v, n in rows if n}


def levels(stack: Stack, shop: str) -> dict[tuple[int, int], int | None]:
    rows = query(
        stack,
        "SELECT inventory_item_id, location_id, available FROM inventory_levels WHERE shop = %s",
        shop,
    )
    return {(item, location): available for item, location, available in rows}


def shopify_levels(store: FakeStore) -> dict[tuple[int, int], int | None]:
    """The store's levels as Shopify holds them (an untracked item has none)."""
    tracked = {v["inventoryItemId"]: v["tracked"] for v in store.variants}
    return {
        key: level["available"] if tracked[key[0]] else None for key, level in store.levels.items()
    }
