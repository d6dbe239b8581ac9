"""The demo store that ``stockpulse up`` runs: its catalogue, its rhythm and its past.

Shared by the store simulator (live orders as webhooks) and the fake Shopify (the same store
as the Admin API shows it, history included), so both describe one store. Everything here is
deterministic: restarting the demo shows the same products, the same starting stock and the
same history for the same days.
"""

from __future__ import annotations

import json
import os
import random
import secrets
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from ops.shopify_payloads import Product, Variant, order_payload, refund_payload

SHOP = "demo.myshopify.com"
SHOP_NAME = "Demo Store"
LOCATION_ID = 7_000_001
LOCATION_NAME = "Demo Warehouse"
SEED = 7
HISTORY_DAYS = 90

WEEKDAY_RHYTHM = (0.8, 0.85, 0.9, 1.0, 1.25, 1.5, 1.2)  # Monday … Sunday
HOUR_RHYTHM = tuple(0.3 if h < 7 else 1.4 if 18 <= h <= 21 else 1.0 for h in range(24))

# Far below the simulator's live ids (milliseconds since 1970 × 1000, ≈ 1.7e15 and growing):
# history and live orders can never share an order, line item or refund id.
HISTORY_IDS = 5_000_000_000_000
_IDS_PER_DAY = 10_000  # ten ids per order: the order, its lines, its refund
_MAX_ORDERS_PER_DAY = _IDS_PER_DAY // 10 - 1

# title, variant options, price, units per day across the store
CATALOGUE = [
    ("Organic Cotton Tee", ["S", "M", "L"], "24.00", 3.0),
    ("Merino Beanie", ["Default Title"], "32.00", 1.2),
    ("Canvas Tote", ["Natural", "Black"], "18.00", 2.0),
    ("Ceramic Mug", ["Default Title"], "14.00", 2.5),
    ("Trail Socks", ["S/M", "L/XL"], "12.00", 4.0),
    ("Rain Jacket", ["M", "L"], "120.00", 0.4),
    ("Notebook A5", ["Default Title"], "9.00", 1.5),
]


@dataclass
class DemoSku:
    variant: Variant
    daily_rate: float
    stock: int


@dataclass(frozen=True)
class DemoOrder:
    """A past order as Shopify's webhooks would have told it."""

    order: dict[str, Any]  # an orders/create (or, cancelled, orders/cancelled) payload
    refunds: list[dict[str, Any]]  # refunds/create payloads


def build_catalogue(rng: random.Random) -> tuple[list[Product], list[DemoSku]]:
    """The products with fixed ids (restarting the demo updates the same products instead of
    adding more), each SKU's demand and starting stock drawn from ``rng``."""
    products: list[Product] = []
    skus: list[DemoSku] = []
    for p_index, (title, options, price, rate) in enumerate(CATALOGUE, start=1):
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
            stock = rng.randint(20, 120)
            skus.append(DemoSku(variant, rate * rng.uniform(0.6, 1.4), stock))
        products.append(product)
    return products, skus


def rhythm(at: datetime) -> float:
    return WEEKDAY_RHYTHM[at.weekday()] * HOUR_RHYTHM[at.hour]


def pick_lines(
    rng: random.Random, skus: Sequence[DemoSku], next_id: Callable[[], int]
) -> list[tuple[int, DemoSku, int]]:
    """One to three distinct SKUs, the popular ones more often: (line item id, SKU, quantity)."""
    weights = [s.daily_rate for s in skus]
    chosen = {id(s): s for s in rng.choices(skus, weights, k=rng.choice((1, 1, 1, 2, 3)))}
    return [(next_id(), s, rng.choice((1, 1, 1, 2))) for s in chosen.values()]


def history(
    skus: Sequence[DemoSku], days: int, until: datetime, *, seed: int = SEED
) -> Iterator[DemoOrder]:
    """The orders of the ``days`` days before ``until``, oldest first, with the weekly and daily
    rhythm of the live store; about 3 % cancelled and 5 % partly returned later.

    Each day is drawn from its own seed and its orders carry ids made from the date, so the
    same day comes out the same whenever it is generated: a restarted demo exports orders the
    database already holds, not lookalikes."""
    total_rate = sum(s.daily_rate for s in skus)
    start = until - timedelta(days=days)
    day = start.date()
    while day <= until.date():
        yield from _day(day, skus, total_rate, start, until, seed)
        day += timedelta(days=1)


def _day(
    day: date,
    skus: Sequence[DemoSku],
    total_rate: float,
    start: datetime,
    until: datetime,
    seed: int,
) -> Iterator[DemoOrder]:
    rng = random.Random(f"demo-history/{seed}/{day.isoformat()}")
    midnight = datetime.combine(day, time(0), UTC)
    mean = total_rate * WEEKDAY_RHYTHM[day.weekday()] / 1.6
    count = min(_MAX_ORDERS_PER_DAY, max(0, round(rng.gauss(mean, 2))))
    drawn = []
    for k in range(count):
        hour = rng.choices(range(24), HOUR_RHYTHM)[0]
        created = midnight + timedelta(hours=hour, seconds=rng.uniform(0, 3600))
        order_id = HISTORY_IDS + day.toordinal() * _IDS_PER_DAY + k * 10
        line_ids = iter(range(order_id + 1, order_id + 4))
        lines = [(li, s.variant, q) for li, s, q in pick_lines(rng, skus, line_ids.__next__)]
        roll = rng.random()
        later = created + timedelta(hours=rng.uniform(1, 72))
        drawn.append((created, order_id, lines, roll, later))
    # Drawn in full first, filtered after: the window cuts a day without changing its orders.
    for created, order_id, lines, roll, later in sorted(drawn, key=lambda d: d[0]):
        if not start <= created < until:
            continue
        if roll < 0.03 and later < until:
            cancelled = order_payload(
                order_id, created, lines, cancelled_at=later, location_id=LOCATION_ID
            )
            yield DemoOrder(cancelled, [])
        elif 0.03 <= roll < 0.08 and later < until:
            order = order_payload(order_id, created, lines, location_id=LOCATION_ID)
            refund = refund_payload(
                order_id + 9, order_id, later, lines[:1], location_id=LOCATION_ID
            )
            yield DemoOrder(order, [refund])
        else:
            yield DemoOrder(order_payload(order_id, created, lines, location_id=LOCATION_ID), [])


@dataclass(frozen=True)
class DemoApp:
    """The demo shop's own app (client credentials grant), as a merchant's Dev Dashboard app
    would be: the stack connects the shop with it and the simulator signs webhooks with it."""

    client_id: str
    client_secret: str


def demo_app(data_dir: Path) -> DemoApp:
    """The demo app of this data directory: made once (readable by its owner only) and kept,
    so a restarted demo still matches the credentials and webhooks stored for the shop."""
    path = data_dir / "demo-app.json"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        made = {
            "client_id": secrets.token_hex(16),
            "client_secret": "shpss_" + secrets.token_hex(16),
        }
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(made, out)
    stored = json.loads(path.read_text())
    return DemoApp(stored["client_id"], stored["client_secret"])
