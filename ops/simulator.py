"""A demo store that talks to Stockpulse the way Shopify does: signed webhooks over HTTP.

Orders follow a weekly and daily rhythm; some are refunded with a restock or cancelled; stock is
replenished when it runs low; now and then a webhook is delivered twice, as Shopify does. Every
stock change is reported with an ``inventory_levels/update`` carrying an increasing updated_at.
The catalogue, rhythm and past orders are :mod:`ops.demo_store`'s, which the demo's fake Shopify
serves too.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import signal
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from ops.demo_store import LOCATION_ID, DemoSku, build_catalogue, pick_lines, rhythm
from ops.shopify_payloads import (
    SignedWebhook,
    inventory_level_payload,
    order_payload,
    product_payload,
    refund_payload,
    signed_webhook,
)

log = logging.getLogger(__name__)

# What the fake Shopify records of each webhook topic (``/_fake/shops/{shop}/{record}``).
_MIRRORED = {
    "orders/create": "orders",
    "orders/cancelled": "orders",
    "refunds/create": "refunds",
    "inventory_levels/update": "levels",
}


# Answers no retry changes: a wrong secret or a shop this deployment does not know.
_REFUSALS = frozenset({401, 403, 404})


class Refused(Exception):
    """The web app refused a webhook for good."""

    def __init__(self, topic: str, status: int, body: str):
        super().__init__(f"{topic} answered {status}: {body}")
        self.status = status


class StoreSimulator:
    """The demo store's live side. With ``mirror_url`` (a fake Shopify's base URL) each order,
    refund and stock change is first recorded there, then sent as its webhook, so the fake's
    Admin API answers what the webhooks said (as Shopify's own would)."""

    def __init__(
        self,
        base_url: str,
        shop: str,
        secret: str,
        *,
        seed: int = 7,
        orders_per_minute: float = 30.0,
        duplicate_rate: float = 0.02,
        mirror_url: str | None = None,
        stop_when_refused: bool = False,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.shop = shop
        self.secret = secret
        self.rng = random.Random(seed)
        self.orders_per_minute = orders_per_minute
        self.duplicate_rate = duplicate_rate
        self.mirror_url = mirror_url.rstrip("/") if mirror_url else None
        self.stop_when_refused = stop_when_refused
        self.products, self.skus = build_catalogue(self.rng)
        self._ids = int(time.time() * 1000) * 1000  # unique across runs of the same shop
        self._last_stamp = datetime.now(UTC)
        self.sent = 0

    def next_id(self) -> int:
        self._ids += 1
        return self._ids

    def stamp(self) -> datetime:
        """Strictly increasing timestamps, as Shopify's updated_at are for one record."""
        now = datetime.now(UTC)
        self._last_stamp = max(now, self._last_stamp + timedelta(milliseconds=1))
        return self._last_stamp

    async def post(self, client: httpx.AsyncClient, hook: SignedWebhook) -> None:
        """Deliver like Shopify: retry on failure, and occasionally deliver twice."""
        deliveries = 2 if self.rng.random() < self.duplicate_rate else 1
        for _ in range(deliveries):
            delay = 0.5
            while True:
                try:
                    response = await client.post(
                        f"{self.base_url}/webhooks/shopify", content=hook.body, headers=hook.headers
                    )
                    if response.status_code < 300:
                        break
                    if self.stop_when_refused and response.status_code in _REFUSALS:
                        raise Refused(hook.topic, response.status_code, response.text[:200])
                    log.warning("%s answered %s; retrying", hook.topic, response.status_code)
                except httpx.HTTPError as exc:
                    _stop_if_cancelled(exc)
                    log.warning("%s not delivered (%s); retrying", hook.topic, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30)
            self.sent += 1

    def hook(self, topic: str, payload: dict) -> SignedWebhook:
        return signed_webhook(topic, self.shop, payload, self.secret)

    async def tell(self, client: httpx.AsyncClient, topic: str, payload: dict[str, Any]) -> None:
        """Something happened in the store: Shopify records it, then sends its webhook."""
        await self.mirror(client, topic, payload)
        await self.post(client, self.hook(topic, payload))

    async def mirror(self, client: httpx.AsyncClient, topic: str, payload: dict[str, Any]) -> None:
        record = _MIRRORED.get(topic)
        if self.mirror_url is None or record is None:
            return
        url = f"{self.mirror_url}/_fake/shops/{self.shop}/{record}"
        try:
            response = await client.post(url, json=payload)
        except httpx.HTTPError as exc:
            _stop_if_cancelled(exc)
            # Only the fake's answers fall behind (until a restart of the demo): the webhook,
            # the product's own path, still goes out.
            log.warning("the fake Shopify did not record %s (%s)", topic, exc)
            return
        if response.status_code >= 300:
            log.warning("the fake Shopify refused %s: %s", topic, response.text[:200])

    async def resume_stock(self, client: httpx.AsyncClient) -> None:
        """Go on from the stock the fake Shopify holds, as a store that restarted would: from
        the seeded stock, each restart of the demo raised every product's stock by what it had
        sold since, with no restock."""
        if self.mirror_url is None:
            return
        try:
            response = await client.get(f"{self.mirror_url}/_fake/shops/{self.shop}/levels")
            response.raise_for_status()
            levels = {
                (level["inventoryItemId"], level["locationId"]): int(level["available"])
                for level in response.json()
            }
        except httpx.HTTPError as exc:
            _stop_if_cancelled(exc)
            log.warning("starting from the seeded stock: no levels from the fake (%s)", exc)
            return
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("starting from the seeded stock: the fake's levels were %r", exc)
            return
        for sku in self.skus:
            sku.stock = levels.get((sku.variant.inventory_item_id, LOCATION_ID), sku.stock)

    async def publish_catalogue(self, client: httpx.AsyncClient) -> None:
        for product in self.products:
            await self.post(
                client, self.hook("products/create", product_payload(product, self.stamp()))
            )
        for sku in self.skus:
            await self.report_stock(client, sku)

    async def report_stock(self, client: httpx.AsyncClient, sku: DemoSku) -> None:
        payload = inventory_level_payload(
            sku.variant.inventory_item_id, LOCATION_ID, sku.stock, self.stamp()
        )
        await self.tell(client, "inventory_levels/update", payload)

    def choose_lines(self) -> list[tuple[int, DemoSku, int]]:
        return pick_lines(self.rng, self.skus, self.next_id)

    async def backfill(self, client: httpx.AsyncClient, days: int) -> None:
        """Past orders, delivered late, so the dashboard has history from the start (for a
        Stockpulse that cannot read the history from Shopify itself)."""
        now = datetime.now(UTC)
        total_rate = sum(s.daily_rate for s in self.skus)
        hooks = []
        for day in range(days, 0, -1):
            date = (now - timedelta(days=day)).replace(hour=12, minute=0, second=0, microsecond=0)
            orders = max(0, round(self.rng.gauss(total_rate * rhythm(date) / 1.6, 2)))
            for _ in range(orders):
                created = date + timedelta(minutes=self.rng.uniform(-600, 600))
                lines = [(li, s.variant, q) for li, s, q in self.choose_lines()]
                hooks.append(
                    self.hook("orders/create", order_payload(self.next_id(), created, lines))
                )
        for start in range(0, len(hooks), 20):
            await asyncio.gather(*(self.post(client, h) for h in hooks[start : start + 20]))
        log.info("backfilled %d orders over %d days", len(hooks), days)

    async def place_order(self, client: httpx.AsyncClient) -> None:
        picked = [(li, s, q) for li, s, q in self.choose_lines() if s.stock >= q]
        if not picked:
            return
        lines = [(li, s.variant, q) for li, s, q in picked]
        order_id = self.next_id()
        created = self.stamp()
        await self.tell(
            client,
            "orders/create",
            order_payload(order_id, created, lines, location_id=LOCATION_ID),
        )
        for _, sku, quantity in picked:
            sku.stock -= quantity
            await self.report_stock(client, sku)
        roll = self.rng.random()
        if roll < 0.03:
            await self.tell(
                client,
                "orders/cancelled",
                order_payload(
                    order_id, created, lines, cancelled_at=self.stamp(), location_id=LOCATION_ID
                ),
            )
            await self.restock(client, picked)
        elif roll < 0.08:
            returned = picked[:1]
            await self.tell(
                client,
                "refunds/create",
                refund_payload(
                    self.next_id(),
                    order_id,
                    self.stamp(),
                    [(li, s.variant, q) for li, s, q in returned],
                    location_id=LOCATION_ID,
                ),
            )
            await self.restock(client, returned)

    async def restock(
        self, client: httpx.AsyncClient, lines: Sequence[tuple[int, DemoSku, int]]
    ) -> None:
        for _, sku, quantity in lines:
            sku.stock += quantity
            await self.report_stock(client, sku)

    async def replenish(self, client: httpx.AsyncClient) -> None:
        for sku in self.skus:
            if sku.stock < sku.daily_rate * 3 and self.rng.random() < 0.5:
                sku.stock += int(sku.daily_rate * 30) + 10
                await self.report_stock(client, sku)

    async def run(self, *, backfill_days: int = 0, duration_s: float | None = None) -> None:
        deadline = None if duration_s is None else time.monotonic() + duration_s
        async with httpx.AsyncClient(timeout=10) as client:
            await self.resume_stock(client)
            await self.publish_catalogue(client)
            if backfill_days:
                await self.backfill(client, backfill_days)
            while deadline is None or time.monotonic() < deadline:
                rate_per_s = self.orders_per_minute / 60 * rhythm(datetime.now(UTC))
                await asyncio.sleep(self.rng.expovariate(max(rate_per_s, 1e-3)))
                await self.place_order(client)
                await self.replenish(client)


def _stop_if_cancelled(exc: httpx.HTTPError) -> None:
    # anyio's connect can turn our cancellation into a connect error; a stop must still stop.
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError from exc


async def _run_until_stopped(sim: StoreSimulator, duration_s: float | None) -> None:
    running = asyncio.ensure_future(sim.run(duration_s=duration_s))
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, running.cancel)
    try:
        await running
    except asyncio.CancelledError:
        pass


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m ops.simulator``: the demo store of ``stockpulse up``, signing its webhooks
    with the secret in ``SHOPIFY_API_SECRET`` (its app's) and recording what it does in the
    fake Shopify at ``--mirror-url``. Stops on SIGTERM or SIGINT."""
    from connectors.settings import get_settings

    parser = argparse.ArgumentParser(prog="python -m ops.simulator")
    parser.add_argument("--url", required=True, help="the Stockpulse web app")
    parser.add_argument("--shop", required=True)
    parser.add_argument("--mirror-url", default=None, help="the shop's fake Shopify")
    parser.add_argument("--orders-per-minute", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--duration", type=float, default=None, help="stop after seconds")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # A line per request would bury the retries and refusals worth reading.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    sim = StoreSimulator(
        args.url,
        args.shop,
        get_settings().webhook_secrets[0].decode(),
        seed=args.seed,
        orders_per_minute=args.orders_per_minute,
        mirror_url=args.mirror_url,
    )
    asyncio.run(_run_until_stopped(sim, args.duration))
    print(f"sent {sim.sent} webhooks", flush=True)


if __name__ == "__main__":
    main()
