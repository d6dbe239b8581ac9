"""A store installs this deployment's app through OAuth, against a fake Shopify (a real HTTP
server): the happy path, every rejection (nothing stored), and expiring tokens that rotate."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import httpx
import pytest

from connectors.crypto import Keyring
from connectors.db import credentials
from connectors.db.pool import open_pool
from connectors.shopify.oauth import query_signature
from connectors.shopify.subscriptions import TOPICS
from connectors.shopify.tokens import ShopTokens
from ops.fake_shopify import FakeShopify, FakeShopifyThread, seed_orders
from ops.shopify_payloads import Variant
from ops.stack import Stack
from tests.conftest import start_stack, stop_stack
from tests.support import (
    SECRET,
    Ids,
    deliver,
    make_variant,
    new_shop,
    order_hook,
    product_hook,
    query,
    scalar,
    signed_in_client,
    signed_up_tester,
    wait_until,
)

APP_ID = "stockpulse-app"


@pytest.fixture(scope="module")
def shopify() -> Iterator[FakeShopify]:
    fake = FakeShopify(app_client_id=APP_ID, app_secret=SECRET)
    running = FakeShopifyThread(fake)
    running.start()
    yield fake
    running.stop()


@pytest.fixture(scope="module")
def oauth_stack(shopify: FakeShopify) -> Iterator[Stack]:
    stack = start_stack(
        "oauth", {"SHOPIFY_API_KEY": APP_ID, "SHOPIFY_ADMIN_URL": shopify.admin_url()}
    )
    yield stack
    stop_stack(stack, "oauth")


def signed(params: dict[str, str]) -> dict[str, str]:
    return {**params, "hmac": query_signature(params, SECRET.encode())}


def new_store(shopify: FakeShopify) -> str:
    domain = f"oauth{Ids.next()}.myshopify.com"
    shopify.add_store(domain, timezone="America/New_York", currency="USD")
    return domain


def stored(stack: Stack, shop: str) -> tuple[int, int]:
    return (
        scalar(stack, "SELECT count(*) FROM shops WHERE domain = %s", shop),
        scalar(stack, "SELECT count(*) FROM shop_credentials WHERE shop = %s", shop),
    )


def install(stack: Stack, shop: str) -> httpx.Response:
    """The merchant, signed in to Stockpulse, installs from Shopify and approves."""
    query = signed({"shop": shop, "timestamp": str(int(time.time()))})
    browser = signed_in_client(stack)
    try:
        return browser.get(f"/shopify/install?{urlencode(query)}", follow_redirects=True)
    finally:
        browser.close()


def test_install_connects_the_store_and_reinstalling_changes_nothing(
    oauth_stack: Stack, shopify: FakeShopify
) -> None:
    shop = new_store(shopify)
    first_id = Ids.next()
    Ids._next += 200_000_000  # the seeded orders' ids
    expected = seed_orders(shopify.stores[shop], 500, variants=10, first_id=first_id)
    landed = install(oauth_stack, shop)
    assert landed.status_code == 200 and landed.url.path == f"/shops/{shop}", landed.url
    assert stored(oauth_stack, shop) == (1, 1)
    # The shop belongs to the account that installed it.
    owner = scalar(
        oauth_stack,
        "SELECT role FROM shop_members WHERE shop = %s AND user_id = %s",
        shop,
        signed_up_tester(oauth_stack)[0],
    )
    assert owner == "owner"
    assert scalar(oauth_stack, "SELECT mode FROM shop_credentials WHERE shop = %s", shop) == (
        "authorization_code"
    )
    assert scalar(oauth_stack, "SELECT timezone FROM shops WHERE domain = %s", shop) == (
        "America/New_York"
    )
    ours = f"{oauth_stack.base_url}/webhooks/shopify"

    def topics() -> list[str]:
        subscriptions = shopify.stores[shop].subscriptions
        return sorted(s["topic"] for s in subscriptions if s["uri"] == ours)

    assert topics() == sorted(TOPICS)
    # The worker backfills the history the install asked for, in the background.
    wait_until(
        lambda: scalar(oauth_stack, "SELECT status FROM backfills WHERE shop = %s", shop) == "done",
        timeout_s=120,
        what="the requested backfill",
    )
    rows = query(
        oauth_stack,
        "SELECT variant_id, sum(units) FROM daily_demand WHERE shop = %s GROUP BY 1",
        shop,
    )
    assert {v: int(n) for v, n in rows if n} == expected
    assert install(oauth_stack, shop).status_code == 200
    assert stored(oauth_stack, shop) == (1, 1) and topics() == sorted(TOPICS)


def test_a_shops_order_another_shop_took_by_a_replay_is_its_own_once_its_history_is_read(
    oauth_stack: Stack, shopify: FakeShopify
) -> None:
    """Shops on the app share its secret: an outside test replayed a shop's signed order
    under another shop's domain before the shop's own, and the other shop kept the order's
    lines and variants for good. What the backfill (and the hourly reconciliation) reads with
    the shop's own token is the shop's: taken back, the other shop's demand reversed."""
    shop = new_store(shopify)
    first_id = Ids.next()
    Ids._next += 200_000_000  # the seeded orders' ids
    store = shopify.stores[shop]
    expected = seed_orders(store, 30, variants=4, first_id=first_id)
    plain = next(
        o
        for o in store.orders
        if not o.get("cancelledAt")
        and all(li["currentQuantity"] == li["quantity"] for li in o["lineItems"])
    )
    lines = [
        (
            li["id"],
            Variant(li["variantId"], li["productId"], Ids.next(), li["sku"], "T", li["price"]),
            li["quantity"],
        )
        for li in plain["lineItems"]
    ]
    other = new_shop(oauth_stack)
    created = datetime.fromisoformat(plain["createdAt"])
    replayed, _ = order_hook(shop, lines, order_id=plain["id"], created_at=created)
    as_other = {**replayed.headers, "X-Shopify-Shop-Domain": other}
    assert deliver(oauth_stack, replayed, headers=as_other).status_code == 200
    held = "SELECT count(*) FROM order_lines WHERE shop = %s"
    wait_until(lambda: scalar(oauth_stack, held, other) == len(lines), what="the replay applied")

    assert install(oauth_stack, shop).status_code == 200
    wait_until(
        lambda: scalar(oauth_stack, "SELECT status FROM backfills WHERE shop = %s", shop) == "done",
        timeout_s=120,
        what="the requested backfill",
    )
    demand = "SELECT variant_id, sum(units) FROM daily_demand WHERE shop = %s GROUP BY 1"
    assert {v: int(n) for v, n in query(oauth_stack, demand, shop) if n} == expected
    assert {v: int(n) for v, n in query(oauth_stack, demand, other) if n} == {}
    assert scalar(oauth_stack, held, other) == 0
    assert scalar(oauth_stack, "SELECT count(*) FROM variants WHERE shop = %s", other) == 0

    # A new product's body replayed under the other shop before its own delivery: the
    # genuine webhook is dead-lettered, until the reconciliation reads the shop's catalogue,
    # takes the variant back and replays the letter.
    later = make_variant("LATER")
    listed_at = datetime.now(UTC) - timedelta(minutes=30)
    store.products.append(
        {
            "id": f"gid://shopify/Product/{later.product_id}",
            "title": f"Product {later.sku}",
            "updatedAt": listed_at.isoformat(),
        }
    )
    store.variants.append(
        {
            "id": later.variant_id,
            "productId": later.product_id,
            "productTitle": f"Product {later.sku}",
            "productStatus": "ACTIVE",
            "productUpdatedAt": listed_at.isoformat(),
            "title": later.title,
            "sku": later.sku,
            "price": later.price,
            "updatedAt": listed_at.isoformat(),
            "inventoryItemId": later.inventory_item_id,
            "tracked": True,
        }
    )
    genuine = product_hook(shop, later)
    assert (
        deliver(
            oauth_stack, genuine, headers={**genuine.headers, "X-Shopify-Shop-Domain": other}
        ).status_code
        == 200
    )
    holds = "SELECT count(*) FROM variants WHERE shop = %s AND variant_id = %s"
    wait_until(lambda: scalar(oauth_stack, holds, other, later.variant_id) == 1, what="replay")
    assert deliver(oauth_stack, genuine).status_code == 200
    letter = "SELECT id FROM dead_letters WHERE shop = %s AND error LIKE '%%another shop%%'"
    displaced = wait_until(lambda: scalar(oauth_stack, letter, shop), what="the displaced letter")
    passed = subprocess.run(
        [sys.executable, "-m", "ops.cli", "reconcile", "--shop", shop],
        env={**os.environ, **oauth_stack.env()},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "took back 1 row another shop" in passed.stdout, passed.stdout
    assert "1 of its dead letters then replayed" in passed.stdout, passed.stdout
    assert scalar(oauth_stack, holds, shop, later.variant_id) == 1
    assert scalar(oauth_stack, holds, other, later.variant_id) == 0
    replayed = "SELECT replayed_at IS NOT NULL FROM dead_letters WHERE id = %s"
    assert scalar(oauth_stack, replayed, displaced) is True


def test_every_rejection_is_a_clear_4xx_and_stores_nothing(
    oauth_stack: Stack, shopify: FakeShopify
) -> None:
    base = oauth_stack.base_url
    shop = new_store(shopify)
    now = str(int(time.time()))

    def get(path: str, params: dict[str, str]) -> httpx.Response:
        return httpx.get(f"{base}{path}?{urlencode(params)}", timeout=10)

    tampered = {**signed({"shop": shop, "timestamp": now}), "timestamp": str(int(now) + 1)}
    assert get("/shopify/install", tampered).status_code == 401
    stale = signed({"shop": shop, "timestamp": str(int(now) - 3600)})
    assert get("/shopify/install", stale).status_code == 400
    for bad in ("evil.example.com", "-x.myshopify.com", "a.myshopify.com.evil.io"):
        assert get("/shopify/install", signed({"shop": bad, "timestamp": now})).status_code == 400

    callback = {"code": "c0de", "shop": shop, "timestamp": now}
    assert (
        get("/shopify/callback", signed({**callback, "state": "never-issued"})).status_code == 400
    )
    # The browser that begins the install keeps its state, and only it can finish it.
    browser = httpx.Client(base_url=base, timeout=10)
    started = browser.get(f"/shopify/install?{urlencode(signed({'shop': shop, 'timestamp': now}))}")
    assert started.status_code in (302, 303, 307)
    state = dict(httpx.URL(started.headers["location"]).params)["state"]
    cookie = started.cookies.get("sp_oauth_state")
    assert cookie == state and "httponly" in started.headers["set-cookie"].lower()

    def finish(params: dict[str, str]) -> httpx.Response:
        return browser.get(f"/shopify/callback?{urlencode(signed(params))}")

    # A genuine callback link opened in another browser (someone else, signed in here) does
    # not install the shop for them, nor spend the state.
    elsewhere = get("/shopify/callback", signed({**callback, "state": state}))
    assert elsewhere.status_code == 400 and "browser" in elsewhere.text
    # A callback without a code is refused before the state is spent (it went to Shopify,
    # failed there with a 502, and the state was gone: an outside test).
    codeless = finish({"shop": shop, "timestamp": now, "state": state})
    assert codeless.status_code == 400 and "code" in codeless.text
    # A state issued to one shop does not serve another.
    other = new_store(shopify)
    foreign = finish({"code": "c0de", "shop": other, "timestamp": now, "state": state})
    assert foreign.status_code == 400
    # Spent by those refusals? No: a state is only spent by its own shop. Used once, then never.
    own = {"code": "bad-code", "shop": shop, "timestamp": now, "state": state}
    refused = finish(own)
    assert refused.status_code == 400 and "state" not in refused.text  # Shopify refuses the code
    spent = finish(own)
    assert spent.status_code == 400 and "already used" in spent.text
    browser.close()
    for domain in (shop, other):
        assert stored(oauth_stack, domain) == (0, 0)


async def test_expiring_tokens_rotate_once_under_a_race_and_survive_a_lost_answer(
    oauth_stack: Stack, shopify: FakeShopify
) -> None:
    shop = new_store(shopify)
    assert (await asyncio.to_thread(install, oauth_stack, shop)).status_code == 200
    keyring = Keyring.parse(oauth_stack.env()["STOCKPULSE_ENCRYPTION_KEYS"])
    pool = await open_pool(oauth_stack.database_url, max_size=12)
    try:
        async with httpx.AsyncClient(timeout=10) as http:

            async def expire_soon() -> credentials.Credentials:
                async with pool.connection() as conn:
                    await conn.execute(
                        "UPDATE shop_credentials SET access_expires_at ="
                        " now() + interval '1 minute' WHERE shop = %s",
                        (shop,),
                    )
                    await conn.commit()
                    creds = await credentials.load(conn, keyring, shop)
                    await conn.commit()
                assert creds is not None and creds.refresh_token
                return creds

            def source() -> ShopTokens:
                return ShopTokens(pool, keyring, http, shop, shopify.admin_url())

            before = await expire_soon()
            tokens = await asyncio.gather(*(source()(False) for _ in range(10)))
            assert len(set(tokens)) == 1 and tokens[0] != before.access_token
            async with pool.connection() as conn:
                after = await credentials.load(conn, keyring, shop)
            assert after is not None and after.refresh_token != before.refresh_token
            assert after.access_expires_at and after.access_expires_at > datetime.now(
                UTC
            ) + timedelta(minutes=50)

            # The refresh answer is lost: Shopify granted, we never heard. The old refresh
            # token still works until the new access token is used.
            await expire_soon()
            shopify.lose_next_token_answer()
            with pytest.raises(httpx.HTTPStatusError):
                await source()(False)
            recovered = await source()(False)
            assert recovered in shopify.stores[shop].tokens
    finally:
        await pool.close()


def test_the_connect_form_connects_a_store_for_the_account_that_owns_it(
    oauth_stack: Stack, shopify: FakeShopify
) -> None:
    domain = f"form{Ids.next()}.myshopify.com"
    shopify.add_store(domain, client_id="own-app", client_secret="own-app-secret")
    browser = signed_in_client(oauth_stack)
    try:
        form = browser.get("/connect").text
        token = form.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
        wrong = browser.post(
            "/connect",
            data={
                "shop": domain,
                "client_id": "own-app",
                "client_secret": "nope",
                "csrf_token": token,
            },
        )
        assert wrong.status_code == 400 and "refused these credentials" in wrong.text
        assert stored(oauth_stack, domain) == (0, 0)
        done = browser.post(
            "/connect",
            data={
                "shop": domain,
                "client_id": "own-app",
                "client_secret": "own-app-secret",
                "csrf_token": token,
            },
        )
        assert done.status_code == 303 and done.headers["location"] == f"/shops/{domain}"
    finally:
        browser.close()
    assert stored(oauth_stack, domain) == (1, 1)
    assert scalar(oauth_stack, "SELECT mode FROM shop_credentials WHERE shop = %s", domain) == (
        "client_credentials"
    )
    assert (
        scalar(
            oauth_stack,
            "SELECT role FROM shop_members WHERE shop = %s AND user_id = %s",
            domain,
            signed_up_tester(oauth_stack)[0],
        )
        == "owner"
    )
    assert scalar(oauth_stack, "SELECT count(*) FROM backfills WHERE shop = %s", domain) == 1
