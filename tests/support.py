"""Helpers shared by the integration and end-to-end tests."""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import httpx
import psycopg
import websockets

from connectors.db import accounts
from connectors.db.shops import install_shop
from connectors.passwords import hash_password
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
from ops.stack import Stack
from tests.mailbox import MAILBOX

SECRET = "test-webhook-secret"
T = TypeVar("T")


TEST_PASSWORD = "Test-Pass-9f3!"  # meets the strength rules
_test_users: dict[str, tuple[int, str, str]] = {}  # database → user id, email, API token


def from_own_address(stack: Stack) -> httpx.Client:
    """A browser-like client connecting from a loopback address of its own, as people's
    browsers come from theirs: per-address limits (sign-up mails, failed logins) count each
    test's browser apart, not the whole suite as one client."""
    address = f"127.{random.randint(1, 254)}.{random.randint(0, 255)}.{random.randint(1, 254)}"
    return httpx.Client(
        base_url=stack.base_url, timeout=10, transport=httpx.HTTPTransport(local_address=address)
    )


def signed_up_tester(stack: Stack) -> tuple[int, str, str]:
    """The account the tests act as on ``stack`` (made once): its id, email and API token."""
    known = _test_users.get(stack.database_url)
    if known is None:
        email = f"tester-{uuid.uuid4().hex[:8]}@example.com"
        token = accounts.new_secret()
        with psycopg.connect(stack.database_url, autocommit=True) as conn:
            row = conn.execute(
                # As the operator makes accounts: its address counts as confirmed.
                "INSERT INTO users (email, password_hash, email_verified_at)"
                " VALUES (%s, %s, now()) RETURNING id",
                (email, hash_password(TEST_PASSWORD)),
            ).fetchone()
            assert row is not None
            conn.execute(
                "INSERT INTO api_tokens (user_id, name, token_hash) VALUES (%s, 'tests', %s)",
                (row[0], accounts.digest(token)),
            )
        known = _test_users[stack.database_url] = (row[0], email, token)
    return known


def grant(stack: Stack, shop: str, role: str = "owner", user_id: int | None = None) -> None:
    """Make the tests' account (or ``user_id``) a member of ``shop``."""
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO shop_members (shop, user_id, role) VALUES (%s, %s, %s)"
            " ON CONFLICT (shop, user_id) DO UPDATE SET role = excluded.role",
            (shop, user_id if user_id is not None else signed_up_tester(stack)[0], role),
        )


def auth(stack: Stack) -> dict[str, str]:
    """Headers that sign a request in as the tests' account."""
    return {"Authorization": f"Bearer {signed_up_tester(stack)[2]}"}


def new_shop(stack: Stack, timezone: str = "UTC") -> str:
    """A freshly installed shop the tests' account owns."""
    shop = f"t{uuid.uuid4().hex[:12]}.myshopify.com"
    install_shop(stack.database_url, shop, timezone=timezone)
    grant(stack, shop)
    return shop


def signed_in_client(stack: Stack) -> httpx.Client:
    """An HTTP client holding a session of the tests' account, signed in through the form."""
    client = httpx.Client(base_url=stack.base_url, timeout=30)
    form = client.get("/login").text
    token = form.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    answer = client.post(
        "/login",
        data={"email": signed_up_tester(stack)[1], "password": TEST_PASSWORD, "csrf_token": token},
    )
    assert answer.status_code == 303, answer.text
    return client


VERIFY_SUBJECT = "Confirm your email address"


def verification_link(stack: Stack, email: str) -> str:
    """The path of the newest verification link mailed to ``email``."""
    mail = MAILBOX.wait_for(email, subject=VERIFY_SUBJECT)
    text = mail.get_body(preferencelist=("plain",)).get_content()
    html = mail.get_body(preferencelist=("html",)).get_content()
    link = re.search(r"(http\S+/email/verify\?token=[A-Za-z0-9_=&%-]+)", text)
    assert link and link.group(1).replace("&", "&amp;") in html, text
    return link.group(1).removeprefix(stack.base_url)


def invitation_link(stack: Stack, email: str) -> str:
    """The path of the newest invitation link mailed to ``email``."""
    mail = MAILBOX.wait_for(email, subject="You are invited")
    text = mail.get_body(preferencelist=("plain",)).get_content()
    html = mail.get_body(preferencelist=("html",)).get_content()
    link = re.search(r"(http\S+/invitations/[A-Za-z0-9_-]+)", text)
    assert link and link.group(1) in html
    return link.group(1).removeprefix(stack.base_url)


def verify_email(
    stack: Stack, email: str, password: str, client: httpx.Client | None = None
) -> httpx.Response:
    """Confirm ``email`` as its owner does: open the link mailed to it, enter the account's
    password, press the button. The answer to the press (a redirect when it worked)."""
    browser = client or httpx.Client(base_url=stack.base_url, timeout=30)
    page = browser.get(verification_link(stack, email))
    assert page.status_code == 200, page.text
    fields = dict(re.findall(r'name="(\w+)" value="([^"]*)"', page.text))
    return browser.post("/email/verify", data={**fields, "password": password})


def reset_password_by_mail(stack: Stack, email: str, password: str) -> httpx.Client:
    """Take an account back as the owner of its address does: ask for a reset, follow the
    mailed link, choose ``password``. The browser that did it (not signed in)."""
    browser = httpx.Client(base_url=stack.base_url, timeout=10)
    form = browser.get("/password/forgot").text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form)
    assert csrf, form[:2000]
    browser.post("/password/forgot", data={"email": email, "csrf_token": csrf.group(1)})
    text = MAILBOX.wait_for(email, subject="Choose a new").get_body(("plain",)).get_content()
    link = re.search(r"http\S+/password/reset\?token=(\S+)", text)
    assert link, text
    page = browser.get(f"/password/reset?token={link.group(1)}").text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert csrf, page[:2000]
    done = browser.post(
        "/password/reset",
        data={"token": link.group(1), "password": password, "csrf_token": csrf.group(1)},
    )
    assert done.status_code == 303, done.text
    return browser


def browser_login(page: Any, stack: Stack, next_path: str = "/") -> None:
    """Sign a Playwright page in as the tests' account through the login form."""
    page.goto(f"{stack.base_url}/login?next={next_path}")
    page.fill("input[name=email]", signed_up_tester(stack)[1])
    page.fill("input[name=password]", TEST_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{stack.base_url}{next_path}")


class Ids:
    """Unique Shopify-like ids per test run."""

    _next = int(time.time() * 1000) * 1000

    @classmethod
    def next(cls) -> int:
        cls._next += 1
        return cls._next


def make_variant(sku: str = "TEE-M", price: str = "20.00") -> Variant:
    product_id = Ids.next()
    return Variant(
        variant_id=Ids.next(),
        product_id=product_id,
        inventory_item_id=Ids.next(),
        sku=sku,
        title="M",
        price=price,
    )


def product_hook(shop: str, variant: Variant, updated_at: datetime | None = None) -> SignedWebhook:
    product = Product(variant.product_id, f"Product {variant.sku}", [variant])
    return signed_webhook(
        "products/create", shop, product_payload(product, updated_at or datetime.now(UTC)), SECRET
    )


def stock_hook(
    shop: str, variant: Variant, available: int | None, updated_at: datetime, location_id: int = 1
) -> SignedWebhook:
    return signed_webhook(
        "inventory_levels/update",
        shop,
        inventory_level_payload(variant.inventory_item_id, location_id, available, updated_at),
        SECRET,
    )


def order_hook(
    shop: str,
    lines: list[tuple[int, Variant, int]],
    *,
    order_id: int | None = None,
    created_at: datetime | None = None,
    cancelled: bool = False,
    event_id: str | None = None,
) -> tuple[SignedWebhook, int]:
    order_id = order_id or Ids.next()
    created = created_at or datetime.now(UTC) - timedelta(minutes=1)
    topic = "orders/cancelled" if cancelled else "orders/create"
    payload = order_payload(
        order_id, created, lines, cancelled_at=datetime.now(UTC) if cancelled else None
    )
    return signed_webhook(topic, shop, payload, SECRET, event_id=event_id), order_id


def refund_hook(
    shop: str,
    order_id: int,
    lines: list[tuple[int, Variant, int]],
    restock_type: str = "return",
    refund_id: int | None = None,
) -> SignedWebhook:
    return signed_webhook(
        "refunds/create",
        shop,
        refund_payload(
            refund_id or Ids.next(), order_id, datetime.now(UTC), lines, restock_type=restock_type
        ),
        SECRET,
    )


def deliver(
    stack: Stack,
    hook: SignedWebhook,
    *,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
) -> httpx.Response:
    return httpx.post(
        f"{stack.base_url}/webhooks/shopify",
        content=hook.body if body is None else body,
        headers=hook.headers if headers is None else headers,
        timeout=10,
    )


def deliver_ok(stack: Stack, hook: SignedWebhook) -> None:
    response = deliver(stack, hook)
    assert response.status_code == 200, response.text


def one_utc_day(needed_s: float = 240) -> None:
    """Wait out midnight UTC when it would fall within the next ``needed_s``: a test that
    compares two forecasts of one day saw the day close between them (the worker rightly
    learnt it, and the future moved), on a CI run that crossed midnight."""
    now = datetime.now(UTC)
    midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), UTC)
    if (left := (midnight - now).total_seconds()) < needed_s:
        time.sleep(left + 1)


def wait_until(probe: Callable[[], T], timeout_s: float = 20, what: str = "condition") -> T:
    deadline = time.monotonic() + timeout_s
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}; last value {last!r}")


def query(stack: Stack, sql: str, *params: Any) -> list[tuple]:
    with psycopg.connect(stack.database_url) as conn:
        return conn.execute(sql, params).fetchall()


def scalar(stack: Stack, sql: str, *params: Any) -> Any:
    rows = query(stack, sql, *params)
    return rows[0][0] if rows else None


def units_sold(stack: Stack, shop: str, variant_id: int) -> int:
    return int(
        scalar(
            stack,
            "SELECT coalesce(sum(units), 0) FROM daily_demand WHERE shop = %s AND variant_id = %s",
            shop,
            variant_id,
        )
    )


def planned_stock(stack: Stack, shop: str, variant_id: int) -> int | None:
    """The stock the SKU's stored plan shows."""
    return scalar(
        stack,
        "SELECT stock FROM sku_plans WHERE shop = %s AND variant_id = %s",
        shop,
        variant_id,
    )


def sku_of(stack: Stack, shop: str, variant_id: int) -> str | None:
    return scalar(
        stack, "SELECT sku FROM variants WHERE shop = %s AND variant_id = %s", shop, variant_id
    )


def variant_deleted(stack: Stack, shop: str, variant: Variant) -> bool | None:
    """Whether the shop deleted the variant (None: never heard of)."""
    return scalar(
        stack,
        "SELECT deleted FROM variants WHERE shop = %s AND variant_id = %s",
        shop,
        variant.variant_id,
    )


def stock_of(stack: Stack, shop: str, variant: Variant) -> int | None:
    return scalar(
        stack,
        "SELECT sum(available) FROM inventory_levels WHERE shop = %s AND inventory_item_id = %s",
        shop,
        variant.inventory_item_id,
    )


def sku_api(stack: Stack, shop: str) -> dict[int, dict]:
    body = httpx.get(
        f"{stack.base_url}/api/v1/shops/{shop}/skus", headers=auth(stack), timeout=10
    ).json()
    return {s["variant_id"]: s for s in body["skus"]}


def plan_as_of(stack: Stack, shop: str, variant_id: int) -> str | None:
    """When the SKU's plan was made, as the API says; None before the SKU or its plan exists."""
    return sku_api(stack, shop).get(variant_id, {}).get("plan_as_of")


class FeedClient:
    """A WebSocket subscriber to one shop's feed that records every message it gets."""

    def __init__(self, stack: Stack, shop: str) -> None:
        self.url = f"ws://127.0.0.1:{stack.web_port}/ws/shops/{shop}"
        self.headers = auth(stack)
        self.messages: list[dict] = []
        self._socket: Any = None
        self._reader: asyncio.Task | None = None

    async def __aenter__(self) -> FeedClient:
        self._socket = await websockets.connect(self.url, additional_headers=self.headers)
        hello = json.loads(await asyncio.wait_for(self._socket.recv(), 10))
        assert hello["type"] == "hello"
        self._reader = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        async for raw in self._socket:
            self.messages.append(json.loads(raw))

    async def wait_for(self, predicate: Callable[[dict], bool], timeout_s: float = 20) -> dict:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for message in self.messages:
                if predicate(message):
                    return message
            await asyncio.sleep(0.02)
        raise AssertionError(f"no matching feed message in {timeout_s}s; got {self.messages!r}")

    async def __aexit__(self, *exc: object) -> None:
        if self._reader:
            self._reader.cancel()
        await self._socket.close()


def mixed_burst(
    shop: str, rng: random.Random, size: int
) -> tuple[list[SignedWebhook], dict, dict, list]:
    """About ``size`` webhooks for 20 SKUs (orders, cancellations, refunds, stock levels, 5 %
    redelivered, shuffled), the catalogue first, with the units and stock they must produce."""
    variants = [make_variant(f"SKU-{i:02d}") for i in range(20)]
    catalogue = [product_hook(shop, v) for v in variants]
    hooks: list[SignedWebhook] = []
    lines: dict[int, dict] = {}  # line_item_id → variant, qty, cancelled, restocked
    latest_stock: dict[int, tuple[datetime, int]] = {}
    base = datetime.now(UTC) - timedelta(days=1)
    while len(hooks) < size:
        roll = rng.random()
        if roll < 0.55 or not lines:
            order_lines = [
                (Ids.next(), rng.choice(variants), rng.randint(1, 4))
                for _ in range(rng.randint(1, 3))
            ]
            hook, order_id = order_hook(
                shop, order_lines, created_at=base + timedelta(minutes=rng.randint(0, 1400))
            )
            hooks.append(hook)
            for line_id, v, qty in order_lines:
                lines[line_id] = {
                    "variant": v,
                    "qty": qty,
                    "order": order_id,
                    "cancelled": False,
                    "restocked": 0,
                }
        elif roll < 0.65:
            line_id = rng.choice(list(lines))
            line = lines[line_id]
            cancel, _ = order_hook(
                shop,
                [(line_id, line["variant"], line["qty"])],
                order_id=line["order"],
                cancelled=True,
            )
            hooks.append(cancel)
            line["cancelled"] = True
        elif roll < 0.75:
            line_id = rng.choice(list(lines))
            line = lines[line_id]
            qty = rng.randint(1, line["qty"])
            restock = rng.random() < 0.7
            hooks.append(
                refund_hook(
                    shop,
                    line["order"],
                    [(line_id, line["variant"], qty)],
                    restock_type="return" if restock else "no_restock",
                )
            )
            line["restocked"] += qty if restock else 0
        else:
            v = rng.choice(variants)
            at = base + timedelta(seconds=rng.randint(0, 86_000), microseconds=rng.randint(0, 999))
            level = rng.randint(0, 200)
            hooks.append(stock_hook(shop, v, level, at))
            if v.inventory_item_id not in latest_stock or latest_stock[v.inventory_item_id][0] < at:
                latest_stock[v.inventory_item_id] = (at, level)
        if rng.random() < 0.05:
            hooks.append(hooks[-1])  # Shopify redelivers
    expected_units: dict[int, int] = defaultdict(int)
    for line in lines.values():
        net = 0 if line["cancelled"] else max(line["qty"] - line["restocked"], 0)
        expected_units[line["variant"].variant_id] += net
    expected_stock = {item: level for item, (_, level) in latest_stock.items()}
    rng.shuffle(hooks)  # Shopify does not promise order
    return catalogue + hooks, dict(expected_units), expected_stock, variants
