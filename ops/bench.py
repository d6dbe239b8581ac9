"""``stockpulse bench ingest``: ingress throughput and end-to-end latency of a running stack.

Phase 1 sends ``count`` pre-signed webhooks at ``concurrency`` and times each answer. Phase 2
paces stock webhooks at ``e2e_rate``/s while a WebSocket client listens, and matches each
accepted webhook to the feed message that names its event id.

aiohttp drives the load because client and server share this machine's two cores and its
client costs less CPU per request than httpx; what it measures is the server.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from ops.shopify_payloads import (
    Product,
    SignedWebhook,
    Variant,
    inventory_level_payload,
    order_payload,
    product_payload,
    signed_webhook,
)

console = Console()
BENCH_SKUS = 200


class CpuMeter:
    """CPU used by named processes (and their children) between two readings, from /proc.

    Shows where the time goes when client, web, worker, broker and database share the cores.
    """

    def __init__(self, roots: dict[str, int], alone: dict[str, int] | None = None) -> None:
        self.roots = roots
        self.alone = alone or {}  # counted without their children
        self._tick = os.sysconf("SC_CLK_TCK")
        self._start: dict[str, float] = {}
        self._started_at = 0.0

    @staticmethod
    def _stat(pid: int) -> tuple[int, float] | None:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            return None
        return int(fields[1]), float(int(fields[11]) + int(fields[12]))  # ppid, utime+stime

    def _read(self) -> dict[str, float]:
        table = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit() and (stat := self._stat(int(entry))) is not None:
                table[int(entry)] = stat
        children: dict[int, list[int]] = {}
        for pid, (ppid, _) in table.items():
            children.setdefault(ppid, []).append(pid)
        totals = {}
        for name, root in self.roots.items():
            seen, todo, ticks = set(), [root], 0.0
            while todo:
                pid = todo.pop()
                if pid in seen or pid not in table:
                    continue
                seen.add(pid)
                ticks += table[pid][1]
                todo.extend(children.get(pid, ()))
            totals[name] = ticks / self._tick
        for name, pid in self.alone.items():
            totals[name] = table[pid][1] / self._tick if pid in table else 0.0
        return totals

    def start(self) -> None:
        self._start = self._read()
        self._started_at = time.perf_counter()

    def percent(self) -> dict[str, float]:
        """Per process, % of one core since start(); the machine has os.cpu_count() of them."""
        elapsed = time.perf_counter() - self._started_at
        now = self._read()
        return {n: round(100 * (now[n] - self._start.get(n, 0)) / elapsed, 1) for n in now}


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def _catalogue() -> list[Variant]:
    base = 5_000_000_000
    return [
        Variant(
            variant_id=base + i,
            product_id=base + i,
            inventory_item_id=base + 100_000 + i,
            sku=f"BENCH-{i:04d}",
            title="Default Title",
            price="10.00",
        )
        for i in range(BENCH_SKUS)
    ]


class Clock:
    """Strictly increasing timestamps so every stock update is newer than the last.

    One clock serves a whole run: generating thousands of updates 1 ms apart runs ahead of the
    wall clock, and a fresh clock would then stamp later updates as older, which the pipeline
    rightly ignores. Each webhook's trigger header carries its body's time, as Shopify's does:
    a body later than its trigger time is bounded by it."""

    def __init__(self) -> None:
        self.t = datetime.now(UTC)

    def next(self) -> datetime:
        self.t = max(self.t + timedelta(milliseconds=1), datetime.now(UTC))
        return self.t


def _mixed_webhooks(
    shop: str, secret: str, variants: list[Variant], count: int, clock: Clock
) -> list[SignedWebhook]:
    """Orders and stock updates in the proportion a store sends them (about 1:1)."""
    hooks = []
    ids = int(time.time() * 1000) * 1000
    for i in range(count):
        variant = variants[i % len(variants)]
        at = clock.next()
        if i % 2:
            ids += 2
            payload = order_payload(ids, at, [(ids + 1, variant, 1)])
            hooks.append(signed_webhook("orders/create", shop, payload, secret, triggered_at=at))
        else:
            payload = inventory_level_payload(variant.inventory_item_id, 1, 1000 - i % 500, at)
            hooks.append(
                signed_webhook("inventory_levels/update", shop, payload, secret, triggered_at=at)
            )
    return hooks


async def _post(session: aiohttp.ClientSession, url: str, hook: SignedWebhook) -> tuple[int, float]:
    started = time.perf_counter()
    async with session.post(url, data=hook.body, headers=hook.headers) as response:
        await response.read()
        return response.status, time.perf_counter() - started


async def _setup_catalogue(
    session: aiohttp.ClientSession, url: str, shop: str, secret: str, variants: list[Variant]
) -> None:
    now = datetime.now(UTC)
    for v in variants:
        product = Product(v.product_id, f"Bench {v.sku}", [v])
        status, _ = await _post(
            session,
            url,
            signed_webhook("products/create", shop, product_payload(product, now), secret),
        )
        if status != 200:
            raise SystemExit(f"setup failed: products/create answered {status}")


async def throughput(
    session: aiohttp.ClientSession, url: str, hooks: list[SignedWebhook], concurrency: int
) -> dict[str, Any]:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    queue = iter(hooks)

    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("ingress throughput", total=len(hooks))

        async def worker() -> None:
            for hook in queue:
                status, latency = await _post(session, url, hook)
                statuses[status] = statuses.get(status, 0) + 1
                if status == 200:
                    latencies.append(latency)
                progress.advance(task)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return {
        "webhooks": len(hooks),
        "concurrency": concurrency,
        "seconds": round(elapsed, 2),
        "accepted_per_s": round(len(latencies) / elapsed, 1),
        "statuses": statuses,
        "ingress_p50_ms": round(percentile(latencies, 50) * 1000, 2),
        "ingress_p99_ms": round(percentile(latencies, 99) * 1000, 2),
    }


async def end_to_end(
    session: aiohttp.ClientSession,
    base_url: str,
    shop: str,
    secret: str,
    variants: list[Variant],
    rate: float,
    seconds: float,
    clock: Clock,
) -> dict[str, Any]:
    url = f"{base_url}/webhooks/shopify"
    accepted_at: dict[str, float] = {}
    received_at: dict[str, float] = {}
    pipeline_s: list[float] = []
    ws_url = base_url.replace("http", "ws", 1) + f"/ws/shops/{shop}"

    async with session.ws_connect(ws_url, max_msg_size=0) as socket:
        await socket.receive_json(timeout=10)  # hello

        async def listen() -> None:
            async for frame in socket:
                now = time.perf_counter()
                message = json.loads(frame.data)
                for event_id in message.get("events", ()):
                    received_at.setdefault(event_id, now)
                if (
                    message.get("received_at")
                    and message.get("as_of")
                    and len(message.get("events", ())) == 1
                ):
                    # Only single-event messages: a coalesced one's received_at is its oldest.
                    pipeline_s.append(
                        (
                            datetime.fromisoformat(message["as_of"])
                            - datetime.fromisoformat(message["received_at"])
                        ).total_seconds()
                    )

        listener = asyncio.create_task(listen())
        total = int(rate * seconds)
        in_flight = set()
        started = time.perf_counter()
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task(f"end to end at {rate:.0f}/s", total=total)
            for i in range(total):
                # Pace by schedule, not by sleep length, so slow answers do not lower the rate.
                delay = started + i / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                variant = variants[i % len(variants)]
                at = clock.next()
                hook = signed_webhook(
                    "inventory_levels/update",
                    shop,
                    inventory_level_payload(variant.inventory_item_id, 1, 500 + i % 100, at),
                    secret,
                    triggered_at=at,
                )

                async def send(hook: SignedWebhook = hook) -> None:
                    status, _ = await _post(session, url, hook)
                    if status == 200:
                        accepted_at[hook.event_id] = time.perf_counter()
                    progress.advance(task)

                in_flight.add(asyncio.create_task(send()))
                in_flight = {t for t in in_flight if not t.done()}
            await asyncio.gather(*in_flight)
            achieved_rate = total / (time.perf_counter() - started)
        # Give the last messages up to 10 s to arrive; the listener fills received_at meanwhile.
        deadline = time.perf_counter() + 10
        missing = accepted_at.keys() - received_at.keys()
        while missing and time.perf_counter() < deadline:
            await asyncio.sleep(0.05)
            missing = accepted_at.keys() - received_at.keys()
        listener.cancel()

    latencies = [received_at[e] - accepted_at[e] for e in accepted_at if e in received_at]
    # A message can arrive before the 200 is read (the feed is that fast); count that as 0.
    latencies = [max(x, 0.0) for x in latencies]
    return {
        "rate_per_s": rate,
        "achieved_rate_per_s": round(achieved_rate, 1),
        "accepted": len(accepted_at),
        "delivered_to_socket": len(latencies),
        "e2e_p50_ms": round(percentile(latencies, 50) * 1000, 1),
        "e2e_p99_ms": round(percentile(latencies, 99) * 1000, 1),
        "e2e_max_ms": round(max(latencies, default=float("nan")) * 1000, 1),
        "single_event_messages": len(pipeline_s),
        "ingress_to_published_p50_ms": round(percentile(pipeline_s, 50) * 1000, 1),
        "ingress_to_published_p99_ms": round(percentile(pipeline_s, 99) * 1000, 1),
    }


async def drain(
    session: aiohttp.ClientSession,
    base_url: str,
    shop: str,
    secret: str,
    variants: list[Variant],
    clock: Clock,
    timeout_s: float = 300,
) -> float:
    """Seconds until a marker stock level per SKU shows in the API, i.e. the worker has worked
    through everything sent before (every SKU's partition is covered). The API, not the feed,
    is polled: the feed may drop a slow reader's oldest messages by design."""
    url = f"{base_url}/webhooks/shopify"
    started = time.perf_counter()
    marker_base = 10_000 + int(time.time()) % 10_000 * 1000
    wanted = {}
    for i, variant in enumerate(variants):
        at = clock.next()
        hook = signed_webhook(
            "inventory_levels/update",
            shop,
            inventory_level_payload(variant.inventory_item_id, 1, marker_base + i, at),
            secret,
            triggered_at=at,
        )
        status, _ = await _post(session, url, hook)
        if status != 200:
            raise SystemExit(f"marker webhook answered {status}")
        wanted[variant.variant_id] = marker_base + i
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("waiting for the worker to catch up", total=len(wanted))
        while True:
            async with session.get(f"{base_url}/api/v1/shops/{shop}/skus") as response:
                skus = (await response.json())["skus"]
            done = sum(1 for s in skus if wanted.get(s["variant_id"]) == s["stock"])
            progress.update(task, completed=done)
            if done == len(wanted):
                return time.perf_counter() - started
            if time.perf_counter() - started > timeout_s:
                raise SystemExit(
                    f"worker did not catch up within {timeout_s}s ({done}/{len(wanted)})"
                )
            await asyncio.sleep(0.1)


async def run_ingest_bench(
    base_url: str,
    shop: str,
    secret: str,
    *,
    count: int,
    concurrency: int,
    e2e_rate: float,
    e2e_seconds: float,
    cpu_of: dict[str, int] | None = None,
    api_token: str | None = None,
) -> dict:
    url = f"{base_url.rstrip('/')}/webhooks/shopify"
    variants = _catalogue()
    connector = aiohttp.TCPConnector(limit=max(concurrency, 256))
    # The feed and the API answer the shop's members only; webhooks need no token.
    headers = {"Authorization": f"Bearer {api_token}"} if api_token else None
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=30), headers=headers
    ) as session:
        console.print(f"setting up {len(variants)} SKUs on {shop}…")
        await _setup_catalogue(session, url, shop, secret, variants)
        clock = Clock()
        warmup = _mixed_webhooks(shop, secret, variants, min(1000, count), clock)
        hooks = _mixed_webhooks(shop, secret, variants, count, clock)
        await throughput(session, url, warmup, concurrency)
        await drain(session, base_url.rstrip("/"), shop, secret, variants, clock)
        # With --embedded the stack runs as our children: count the client alone.
        meter = CpuMeter(cpu_of or {}, alone={"bench client": os.getpid()})
        meter.start()
        phase_started = time.perf_counter()
        ingest = await throughput(session, url, hooks, concurrency)
        ingest["cpu_percent_of_a_core"] = meter.percent()
        caught_up_s = await drain(session, base_url.rstrip("/"), shop, secret, variants, clock)
        applied_s = time.perf_counter() - phase_started
        ingest["worker_caught_up_after_s"] = round(caught_up_s, 2)
        # Everything sent in the phase (webhooks and markers) was applied in this time.
        ingest["worker_applied_per_s"] = round((len(hooks) + len(variants)) / applied_s, 1)
        meter.start()
        e2e = await end_to_end(
            session, base_url.rstrip("/"), shop, secret, variants, e2e_rate, e2e_seconds, clock
        )
    e2e["cpu_percent_of_a_core"] = meter.percent()
    results: dict[str, Any] = {
        "ingest": ingest,
        "end_to_end": e2e,
        "ran_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    table = Table(title="stockpulse bench ingest")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for section in ("ingest", "end_to_end"):
        for key, value in results[section].items():
            table.add_row(f"{section}.{key}", str(value))
    console.print(table)
    return results


def write_results(results: dict, path: str) -> None:
    Path(path).write_text(json.dumps(results, indent=2))
