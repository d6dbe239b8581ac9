"""``stockpulse bench feed``: how fast one update reaches many open dashboards.

``clients`` WebSocket feeds of one shop are opened (with an API token, as a script or a
browser's session would be), then stock webhooks for one SKU are sent one at a time; each
client notes when the update naming the webhook's event arrived. Latency is that moment minus
the moment the webhook's 200 came back (the same definition as ``bench ingest``'s
end-to-end), over every client and every update. Clients and server share this machine's two
cores, so the clients' own reading is part of what is measured.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from rich.progress import Progress

from ops.bench import percentile
from ops.shopify_payloads import (
    Product,
    Variant,
    inventory_level_payload,
    product_payload,
    signed_webhook,
)


async def feed_fanout(
    base_url: str,
    shop: str,
    secret: str,
    api_token: str,
    *,
    clients: int,
    updates: int,
    gap_s: float,
) -> dict[str, Any]:
    variant = Variant(
        variant_id=9_100_000_001,
        product_id=9_100_000_000,
        inventory_item_id=9_100_000_002,
        sku="FANOUT-1",
        title="Default Title",
        price="10.00",
    )
    product = Product(product_id=variant.product_id, title="Fan-out", variants=[variant])
    webhooks = f"{base_url}/webhooks/shopify"
    ws_url = base_url.replace("http", "ws", 1) + f"/ws/shops/{shop}"
    received: list[dict[str, float]] = [{} for _ in range(clients)]
    accepted: dict[str, float] = {}
    auth = {"Authorization": f"Bearer {api_token}"}
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        hook = signed_webhook(
            "products/create", shop, product_payload(product, datetime.now(UTC)), secret
        )
        async with session.post(webhooks, data=hook.body, headers=hook.headers) as answer:
            assert answer.status == 200, await answer.text()

        sockets: list[aiohttp.ClientWebSocketResponse] = []
        with Progress(transient=True) as progress:
            task = progress.add_task(f"opening {clients} feeds", total=clients)
            for start in range(0, clients, 50):
                batch = await asyncio.gather(
                    *(
                        session.ws_connect(ws_url, headers=auth, heartbeat=None)
                        for _ in range(start, min(clients, start + 50))
                    )
                )
                for socket in batch:
                    await socket.receive_json(timeout=30)  # hello
                sockets.extend(batch)
                progress.update(task, completed=len(sockets))

        async def listen(index: int, socket: aiohttp.ClientWebSocketResponse) -> None:
            notes = received[index]
            async for frame in socket:
                now = time.perf_counter()
                if frame.type != aiohttp.WSMsgType.TEXT:
                    continue
                for event_id in json.loads(frame.data).get("events", ()):
                    notes.setdefault(event_id, now)

        listeners = [asyncio.create_task(listen(i, s)) for i, s in enumerate(sockets)]
        stamp = datetime.now(UTC)
        # Warm up: the worker must have joined its consumer group and the hub its topic, or
        # the first updates measure the start-up. Send until the first client sees one.
        deadline = time.monotonic() + 120
        while not received[0]:
            if time.monotonic() > deadline:
                raise SystemExit("no update reached the feed within 120 s")
            stamp += timedelta(seconds=1)
            warm = signed_webhook(
                "inventory_levels/update",
                shop,
                inventory_level_payload(variant.inventory_item_id, 1, 1, stamp),
                secret,
                triggered_at=stamp,
            )
            async with session.post(webhooks, data=warm.body, headers=warm.headers) as answer:
                assert answer.status == 200, await answer.text()
            await asyncio.sleep(1.0)
        await asyncio.sleep(2)
        with Progress(transient=True) as progress:
            task = progress.add_task(f"{updates} updates to {clients} feeds", total=updates)
            for n in range(updates):
                stamp += timedelta(seconds=1)
                hook = signed_webhook(
                    "inventory_levels/update",
                    shop,
                    inventory_level_payload(variant.inventory_item_id, 1, 100 + n, stamp),
                    secret,
                    triggered_at=stamp,  # as Shopify's: a body is bounded by its trigger time
                )
                async with session.post(webhooks, data=hook.body, headers=hook.headers) as answer:
                    assert answer.status == 200, await answer.text()
                accepted[hook.event_id] = time.perf_counter()
                await asyncio.sleep(gap_s)
                progress.update(task, completed=n + 1)
        await asyncio.sleep(3)  # the last updates' stragglers
        for listener in listeners:
            listener.cancel()
        await asyncio.gather(*(s.close() for s in sockets), return_exceptions=True)

    latencies = [
        max(0.0, notes[event] - at)
        for notes in received
        for event, at in accepted.items()
        if event in notes
    ]
    expected = clients * len(accepted)
    return {
        "clients": clients,
        "updates": len(accepted),
        "deliveries": len(latencies),
        "delivered_percent": round(100 * len(latencies) / expected, 2) if expected else 0.0,
        "p50_ms": round(percentile(latencies, 50) * 1000, 1) if latencies else None,
        "p99_ms": round(percentile(latencies, 99) * 1000, 1) if latencies else None,
        "max_ms": round(max(latencies) * 1000, 1) if latencies else None,
    }
