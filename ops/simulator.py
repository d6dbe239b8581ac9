"""A demo store that talks to Stockpulse the way Shopify does: signed webhooks over HTTP.

Orders follow a weekly and daily rhythm; some are refunded with a restock or cancelled; stock is
replenished when it runs low; now and then a webhook is delivered twice, as Shopify does. Every
stock change is reported with an ``inventory_levels/update`` carrying an increasing updated_at.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx

from ops.shopify_payloads import (
    Product,
    SignedWebhook,
    Variant,
    inventory_level_payload,
    order_payload,
    product_payload,
    refund_payload,
    signed_webhook,
)

log = logging.getLogger(__name__)

WEEKDAY_RHYTHM = (0.8, 0.85, 0.9, 1.0, 1.25, 1.5, 1.2)  # Monday … Sunday
HOUR_RHYTHM = tuple(0.3 if h < 7 else 1.4 if 18 <= h <= 21 else 1.0 for h in range(24))
LOCATION_ID = 7_000_001

_CATALOGUE = [
    ("Organic Cotton Tee", ["S", "M", "L"], "24.00", 3.0),
    ("Merino Beanie", ["Default Title"], "32.00", 1.2),
    ("Canvas Tote", ["Natural", "Black"], "18.00", 2.0),
    ("Ceramic Mug", ["Default Title"], "14.00", 2.5),
    ("Trail Socks", ["S/M", "L/XL"], "12.00", 4.0),
    ("Rain Jacket", ["M", "L"], "120.00", 0.4),
    ("Notebook A5", ["Default Title"], "9.00", 1.5),
]


@dataclass
class SimulatedSku:
    variant: Variant
    daily_rate: float
    stock: int


class StoreSimulator:
    def __init__(
        self,
        base_url: str,
        shop: str,
        secret: str,
        *,
        seed: int = 7,
        orders_per_minute: float = 30.0,
        duplicate_rate: float = 0.02,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.shop = shop
        self.secret = secret
        self.rng = random.Random(seed)
        self.orders_per_minute = orders_per_minute
        self.duplicate_rate = duplicate_rate
        self.products: list[Product] = []
        self.skus: list[SimulatedSku] = []
        self._ids = int(time.time() * 1000) * 1000  # unique across runs of the same shop
        self._last_stamp = datetime.now(UTC)
        self._build_catalogue()
        self.sent = 0

    def _build_catalogue(self) -> None:
        for p_index, (title, options, price, rate) in enumerate(_CATALOGUE, start=1):
            # Fixed ids: restarting the demo updates the same products instead of adding more.
            product = Product(product_id=8_000_000 + p_index, title=title)
            for v_index, option in enumerate(options, start=1):
                variant = Variant(
                    variant_id=product.product_id * 10 + v_index,
                    product_id=product.product_id,
                    inventory_item_id=9_000_000 + p_index * 10 + v_index,
                    sku=f"{title.split()[0][:4].upper()}-{option.replace('/', '').upper()[:6]}",
                    title=option,
                    price=price,
                )
                product.variants.append(variant)
                stock = self.rng.randint(20, 120)
                self.skus.append(SimulatedSku(variant, rate * self.rng.uniform(0.6, 1.4), stock))
            self.products.append(product)

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
                    log.warning("%s answered %s; retrying", hook.topic, response.status_code)
                except httpx.HTTPError as exc:
                    # anyio's connect can turn our cancellation into a connect error; a Ctrl-C
                    # must still stop the retries.
                    task = asyncio.current_task()
                    if task is not None and task.cancelling():
                        raise asyncio.CancelledError from exc
                    log.warning("%s not delivered (%s); retrying", hook.topic, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30)
            self.sent += 1

    def hook(self, topic: str, payload: dict) -> SignedWebhook:
        return signed_webhook(topic, self.shop, payload, self.secret)

    async def publish_catalogue(self, client: httpx.AsyncClient) -> None:
        for product in self.products:
            await self.post(
                client, self.hook("products/create", product_payload(product, self.stamp()))
            )
        for sku in self.skus:
            await self.report_stock(client, sku)

    async def report_stock(self, client: httpx.AsyncClient, sku: SimulatedSku) -> None:
        payload = inventory_level_payload(
            sku.variant.inventory_item_id, LOCATION_ID, sku.stock, self.stamp()
        )
        await self.post(client, self.hook("inventory_levels/update", payload))

    def rhythm(self, at: datetime) -> float:
        return WEEKDAY_RHYTHM[at.weekday()] * HOUR_RHYTHM[at.hour]

    def pick_lines(self, at_rate: bool = True) -> list[tuple[int, Variant, int]]:
        weights = [s.daily_rate for s in self.skus]
        chosen = {
            id(s): s
            for s in self.rng.choices(self.skus, weights, k=self.rng.choice((1, 1, 1, 2, 3)))
        }
        return [(self.next_id(), s.variant, self.rng.choice((1, 1, 1, 2))) for s in chosen.values()]

    async def backfill(self, client: httpx.AsyncClient, days: int) -> None:
        """Past orders, delivered late, so the dashboard has history from the start."""
        now = datetime.now(UTC)
        total_rate = sum(s.daily_rate for s in self.skus)
        hooks = []
        for day in range(days, 0, -1):
            date = (now - timedelta(days=day)).replace(hour=12, minute=0, second=0, microsecond=0)
            orders = max(0, round(self.rng.gauss(total_rate * self.rhythm(date) / 1.6, 2)))
            for _ in range(orders):
                created = date + timedelta(minutes=self.rng.uniform(-600, 600))
                hooks.append(
                    self.hook(
                        "orders/create", order_payload(self.next_id(), created, self.pick_lines())
                    )
                )
        for start in range(0, len(hooks), 20):
            await asyncio.gather(*(self.post(client, h) for h in hooks[start : start + 20]))
        log.info("backfilled %d orders over %d days", len(hooks), days)

    async def place_order(self, client: httpx.AsyncClient) -> None:
        lines = [(li, v, q) for li, v, q in self.pick_lines() if self.sku_of(v).stock >= q]
        if not lines:
            return
        order_id = self.next_id()
        created = self.stamp()
        await self.post(
            client,
            self.hook(
                "orders/create", order_payload(order_id, created, lines, location_id=LOCATION_ID)
            ),
        )
        for _, variant, quantity in lines:
            sku = self.sku_of(variant)
            sku.stock -= quantity
            await self.report_stock(client, sku)
        roll = self.rng.random()
        if roll < 0.03:
            await self.post(
                client,
                self.hook(
                    "orders/cancelled",
                    order_payload(
                        order_id, created, lines, cancelled_at=self.stamp(), location_id=LOCATION_ID
                    ),
                ),
            )
            await self.restock(client, lines)
        elif roll < 0.08:
            returned = lines[:1]
            await self.post(
                client,
                self.hook(
                    "refunds/create",
                    refund_payload(
                        self.next_id(), order_id, self.stamp(), returned, location_id=LOCATION_ID
                    ),
                ),
            )
            await self.restock(client, returned)

    async def restock(
        self, client: httpx.AsyncClient, lines: list[tuple[int, Variant, int]]
    ) -> None:
        for _, variant, quantity in lines:
            sku = self.sku_of(variant)
            sku.stock += quantity
            await self.report_stock(client, sku)

    async def replenish(self, client: httpx.AsyncClient) -> None:
        for sku in self.skus:
            if sku.stock < sku.daily_rate * 3 and self.rng.random() < 0.5:
                sku.stock += int(sku.daily_rate * 30) + 10
                await self.report_stock(client, sku)

    def sku_of(self, variant: Variant) -> SimulatedSku:
        return next(s for s in self.skus if s.variant is variant)

    async def run(self, *, backfill_days: int = 0, duration_s: float | None = None) -> None:
        deadline = None if duration_s is None else time.monotonic() + duration_s
        async with httpx.AsyncClient(timeout=10) as client:
            await self.publish_catalogue(client)
            if backfill_days:
                await self.backfill(client, backfill_days)
            while deadline is None or time.monotonic() < deadline:
                rate_per_s = self.orders_per_minute / 60 * self.rhythm(datetime.now(UTC))
                await asyncio.sleep(self.rng.expovariate(max(rate_per_s, 1e-3)))
                await self.place_order(client)
                await self.replenish(client)
