"""``stockpulse bench alerts``: from the webhook that crosses a line to the email on the server.

An embedded stack (worker, alert sender, web) sends its mail to an SMTP server inside this
process (aiosmtpd on loopback), which notes when each message arrived and which SKUs it names.

* **Latency**: SKUs of several shops are at 20 units with a low-stock line of 5; stock
  webhooks drop them to 3 one at a time, round-robin over the shops so that each email
  carries one crossing. Latency is the email's arrival minus the moment the webhook was
  sent: ingress, broker, worker, forecast round, outbox, the sender's grouping window and
  SMTP, all of it.
* **Burst**: one shop's ``burst`` SKUs cross at once (the webhooks sent 50 at a time); the
  figure is the time until the server holds emails naming every one of them.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import re
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
from aiosmtpd.controller import Controller
from rich.progress import Progress

from connectors.db.shops import install_shop
from connectors.settings import get_settings
from ops.bench import percentile
from ops.embedded import free_port
from ops.shopify_payloads import (
    Product,
    Variant,
    inventory_level_payload,
    product_payload,
    signed_webhook,
)
from ops.stack import Stack

_SKU_IN_BODY = re.compile(r"\((BA-[0-9-]+)\)")


class Sink:
    """The SMTP server: arrival time and SKUs of every message, by recipient."""

    def __init__(self) -> None:
        self.arrivals: list[tuple[float, str, set[str], str]] = []
        self._lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        at = time.monotonic()
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        body = message.get_body(preferencelist=("plain",))
        text = body.get_content() if body is not None else ""
        skus = set(_SKU_IN_BODY.findall(text))
        with self._lock:
            for rcpt in envelope.rcpt_tos:
                self.arrivals.append((at, rcpt, skus, str(message["Message-ID"])))
        return "250 OK"

    def skus_for(self, recipient: str) -> dict[str, float]:
        """First arrival of each SKU in mail to ``recipient``."""
        seen: dict[str, float] = {}
        with self._lock:
            for at, rcpt, skus, _ in self.arrivals:
                if rcpt == recipient:
                    for sku in skus:
                        seen.setdefault(sku, at)
        return seen

    def messages_to(self, recipient: str) -> int:
        with self._lock:
            return sum(1 for _, rcpt, _, _ in self.arrivals if rcpt == recipient)


def _variant(number: int, sku: str) -> Variant:
    return Variant(
        variant_id=9_300_000_000 + number * 3,
        product_id=9_300_000_000 + number * 3 + 1,
        inventory_item_id=9_300_000_000 + number * 3 + 2,
        sku=sku,
        title="Default Title",
        price="10.00",
    )


def _alerting_shop(database_url: str, shop: str, recipient: str) -> None:
    install_shop(database_url, shop)
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "INSERT INTO shop_settings (shop, low_stock_threshold) VALUES (%s, 5)"
            " ON CONFLICT (shop) DO UPDATE SET low_stock_threshold = 5",
            (shop,),
        )
        # Low stock only: the other rules would add digests and crossings of their own.
        conn.execute(
            "INSERT INTO alert_settings (shop, rules) VALUES (%s, ARRAY['low_stock'])"
            " ON CONFLICT (shop) DO NOTHING",
            (shop,),
        )
        conn.execute(
            "INSERT INTO alert_recipients (shop, email) VALUES (%s, %s) ON CONFLICT DO NOTHING",
            (shop, recipient),
        )


async def _post(session: aiohttp.ClientSession, url: str, hook: Any) -> None:
    async with session.post(url, data=hook.body, headers=hook.headers) as answer:
        if answer.status != 200:
            raise RuntimeError(f"webhook refused: {answer.status} {await answer.text()}")


async def _stock_all(
    session: aiohttp.ClientSession,
    url: str,
    shop: str,
    secret: str,
    variants: list[Variant],
    available: int,
) -> None:
    at = datetime.now(UTC)
    hooks = [
        signed_webhook(
            "inventory_levels/update",
            shop,
            inventory_level_payload(v.inventory_item_id, 1, available, at),
            secret,
        )
        for v in variants
    ]
    for start in range(0, len(hooks), 50):
        await asyncio.gather(*(_post(session, url, h) for h in hooks[start : start + 50]))


async def _catalogue(
    session: aiohttp.ClientSession, url: str, shop: str, secret: str, variants: list[Variant]
) -> None:
    hooks = [
        signed_webhook(
            "products/create",
            shop,
            product_payload(Product(v.product_id, f"Bench {v.sku}", [v]), datetime.now(UTC)),
            secret,
        )
        for v in variants
    ]
    for start in range(0, len(hooks), 50):
        await asyncio.gather(*(_post(session, url, h) for h in hooks[start : start + 50]))
    await _stock_all(session, url, shop, secret, variants, 20)


def _planned_at(database_url: str, shop: str, stock: int) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM sku_plans WHERE shop = %s AND stock = %s", (shop, stock)
        ).fetchone()
    return int(row[0]) if row else 0


async def _wait(probe: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not probe():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def alert_bench(
    data_dir: Path, *, samples: int, shops: int, gap_s: float, burst: int
) -> dict[str, Any]:
    sink = Sink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port, data_size_limit=0)
    controller.start()
    secret = get_settings().webhook_secrets[0].decode()
    stack = Stack(
        data_dir,
        extra_env={"NIGHTLY_AT": "off", "SMTP_URL": f"smtp://127.0.0.1:{port}?starttls=off"},
    )
    try:
        stack.start_infrastructure()
        names = [f"bench-alerts-{i}.myshopify.com" for i in range(shops)]
        per_shop = -(-samples // shops)
        for name in names:
            _alerting_shop(stack.database_url, name, f"ops@{name}")
        burst_shop = "bench-alerts-burst.myshopify.com"
        _alerting_shop(stack.database_url, burst_shop, f"ops@{burst_shop}")
        stack.start_worker()
        stack.start_sender()
        stack.start_web()
        url = f"{stack.base_url}/webhooks/shopify"
        async with aiohttp.ClientSession() as session:
            catalogues: dict[str, list[Variant]] = {}
            number = 0
            for s, name in enumerate(names):
                catalogues[name] = []
                for i in range(per_shop):
                    catalogues[name].append(_variant(number, f"BA-{s}-{i}"))
                    number += 1
                await _catalogue(session, url, name, secret, catalogues[name])
            burst_variants = [_variant(number + i, f"BA-9999-{i}") for i in range(burst)]
            await _catalogue(session, url, burst_shop, secret, burst_variants)
            for name in [*names, burst_shop]:
                expected = len(catalogues.get(name, burst_variants))
                await _wait(
                    lambda n=name, e=expected: _planned_at(stack.database_url, n, 20) == e,
                    300,
                    f"{name}'s plans",
                )

            sent_at: dict[str, float] = {}
            with Progress(transient=True) as progress:
                task = progress.add_task("crossings", total=samples)
                for i in range(samples):
                    name = names[i % shops]
                    variant = catalogues[name][i // shops]
                    hook = signed_webhook(
                        "inventory_levels/update",
                        name,
                        inventory_level_payload(variant.inventory_item_id, 1, 3, datetime.now(UTC)),
                        secret,
                    )
                    sent_at[variant.sku or ""] = time.monotonic()
                    await _post(session, url, hook)
                    progress.update(task, advance=1)
                    await asyncio.sleep(gap_s)

            def arrived() -> dict[str, float]:
                seen: dict[str, float] = {}
                for name in names:
                    seen.update(sink.skus_for(f"ops@{name}"))
                return seen

            await _wait(lambda: set(sent_at) <= set(arrived()), 60, "every latency email")
            got = arrived()
            latencies = sorted((got[sku] - t) * 1000 for sku, t in sent_at.items())
            single = sum(sink.messages_to(f"ops@{name}") for name in names)

            t0 = time.monotonic()
            await _stock_all(session, url, burst_shop, secret, burst_variants, 3)
            wanted = {v.sku for v in burst_variants}
            recipient = f"ops@{burst_shop}"
            await _wait(lambda: wanted <= set(sink.skus_for(recipient)), 120, "the burst")
            burst_s = max(sink.skus_for(recipient)[sku] for sku in wanted) - t0
        with psycopg.connect(stack.database_url) as conn:
            row = conn.execute(
                "SELECT count(*), count(*) FILTER (WHERE e.state = 'sent') FROM alerts a"
                " JOIN alert_deliveries d ON d.alert_id = a.id"
                " LEFT JOIN alert_emails e ON e.id = d.email_id WHERE a.shop = %s",
                (burst_shop,),
            ).fetchone()
        assert row is not None
        return {
            "samples": samples,
            "shops": shops,
            "latency_emails": single,
            "p50_ms": round(percentile(latencies, 50), 1),
            "p99_ms": round(percentile(latencies, 99), 1),
            "max_ms": round(latencies[-1], 1),
            "burst_alerts": burst,
            "burst_deliveries_sent": int(row[1]),
            "burst_alerts_recorded": int(row[0]),
            "burst_emails": sink.messages_to(recipient),
            "burst_seconds": round(burst_s, 2),
        }
    finally:
        stack.stop()
        controller.stop()
