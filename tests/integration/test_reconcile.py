"""Reconciliation against a fake Shopify (a real HTTP server): drift a lost or late webhook left
(a missed order, a missed edit and refund, a stale stock level, an unknown product) is fixed
through the normal write path and recorded with what, old, new and why; what we hold newer
than Shopify's export is left alone; a second pass finds nothing."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
from psycopg.rows import dict_row

from connectors.db import reconciliations
from ops.fake_shopify import (
    FakeShopify,
    FakeStore,
    add_refund,
    edit_line,
    expected_units,
    seed_catalogue,
    seed_orders,
    set_level,
)
from ops.shopify_payloads import Product, Variant, order_payload, product_payload
from ops.stack import Stack
from streams.reconcile import EXIT_BUSY
from tests.integration.store_support import (
    cli,
    finished,
    levels,
    post_signed,
    run,
    shopify_levels,
    units,
)
from tests.support import Ids, auth, grant, query, scalar

CLIENT_ID, CLIENT_SECRET = "reconcile-app", "reconcile-app-secret"


async def test_reconciliation_fixes_drift_records_it_and_leaves_newer_data_alone(
    stack: Stack, fake_shopify: FakeShopify
) -> None:
    store = fake_shopify.add_store(
        f"recon{Ids.next()}.myshopify.com", client_id=CLIENT_ID, client_secret=CLIENT_SECRET
    )
    first_id = Ids.next()
    Ids._next += 400_000_000  # the ids the catalogue and orders below use
    seed_catalogue(store, 40, variants_per_product=2, locations=2, first_id=first_id)
    variant_ids = [v["id"] for v in store.variants]
    expected = seed_orders(
        store,
        300,
        variant_ids=variant_ids,
        days=60,
        refund_rate=0.1,
        first_id=first_id + 200_000_000,
    )
    await run(
        stack,
        *("connect", "--shop", store.domain, "--admin-url", fake_shopify.admin_url()),
        *("--client-id", CLIENT_ID, "--client-secret", CLIENT_SECRET, "--months", "3"),
    )
    assert units(stack, store.domain) == shopify_units(store)
    assert shopify_units(store) == {v: n for v, n in expected.items() if n}
    assert levels(stack, store.domain) == shopify_levels(store)
    assert scalar(stack, "SELECT count(*) FROM locations WHERE shop = %s", store.domain) == 2

    # Drift that lost webhooks leave behind, made in the fake Shopify and never delivered:
    # an edit and a refund of existing orders, stock that moved, a new order.
    edited, refunded = store.orders[-1], store.orders[-2]
    edited_line = edited["lineItems"][0]
    edit_line(store, edited["id"], edited_line["id"], 0)
    refunded_line = refunded["lineItems"][0]
    add_refund(store, refunded["id"], Ids.next(), refunded_line["id"], 1, "RETURN")
    moved = next(iter(store.levels))
    set_level(store, moved[0], moved[1], 9_999)
    missed = seed_orders(store, 1, variant_ids=variant_ids, days=0, first_id=first_id + 300_000_000)
    store.orders[-1]["createdAt"] = store.orders[-1]["updatedAt"] = datetime.now(UTC).isoformat()
    # And a level we hold newer than Shopify's export (a webhook the export has not caught up
    # with): reconciliation must not put Shopify's older value over it.
    newer_key = list(store.levels)[1]
    newer_at = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
    await deliver_level(stack, store.domain, newer_key, 4_242, newer_at)
    # An item disconnected from a location: Shopify's export no longer lists the level, and
    # its webhook (inventory_levels/disconnect) is not applied.
    gone = list(store.levels)[2]
    held_before = levels(stack, store.domain)[gone]
    del store.levels[gone]
    # A variant deleted in Shopify, its product kept: the export lists neither it nor its
    # levels, and its only webhook, a products/update without it, is not taken as a delete.
    deleted = store.variants.pop(7)
    deleted_levels = [key for key in store.levels if key[0] == deleted["inventoryItemId"]]
    for key in deleted_levels:
        del store.levels[key]
    await deliver_product_update(stack, store, deleted["productId"])
    assert deleted["id"] in live_variants(stack, store.domain)
    # A variant only an order names, which Shopify does not have (a placeholder SKU here).
    ghost = Variant(Ids.next(), Ids.next(), Ids.next(), "NO-SUCH-SKU", "Ghost", "5.00")
    ghost_order = order_payload(Ids.next(), datetime.now(UTC), [(Ids.next(), ghost, 1)])
    async with httpx.AsyncClient(timeout=10) as http:
        answer = await post_signed(
            http, stack, store.domain, "orders/create", ghost_order, CLIENT_SECRET
        )
    assert answer.status_code == 200, answer.text
    for _ in range(100):
        if ghost.variant_id in units(stack, store.domain):
            break
        await asyncio.sleep(0.1)
    assert live_variants(stack, store.domain) == set(variant_ids) | {ghost.variant_id}
    # First seen an hour ago: one first seen within five minutes of an export may be newer
    # than its snapshot on Shopify's clock, and waits for the next pass.
    query(
        stack,
        "UPDATE variants SET first_seen_at = now() - interval '1 hour'"
        " WHERE variant_id = %s RETURNING 1",
        ghost.variant_id,
    )

    out = await run(stack, "reconcile", "--shop", store.domain)
    corrected = int(re.search(r"(\d+) corrected", out).group(1))  # type: ignore[union-attr]
    assert corrected >= 3, out

    assert missed  # the new order counts units
    # Every unit now matches what Shopify says, recomputed from its orders.
    assert units_but(stack, store.domain, ghost.variant_id) == shopify_units(store)
    # The deleted variant and the placeholder are gone from the shop, their sales kept.
    assert live_variants(stack, store.domain) == {v["id"] for v in store.variants}
    assert deleted["id"] in units(stack, store.domain)
    assert levels(stack, store.domain)[moved] == 9_999
    assert levels(stack, store.domain)[newer_key] == 4_242
    assert gone not in levels(stack, store.domain)
    assert {k: v for k, v in levels(stack, store.domain).items() if k != newer_key} == {
        k: v for k, v in shopify_levels(store).items() if k != newer_key
    }
    kinds = dict(
        query(
            stack,
            "SELECT kind, count(*) FROM reconciliation_corrections WHERE shop = %s GROUP BY 1",
            store.domain,
        )
    )
    # The level that moved, the one disconnected, the deleted variant's.
    assert kinds.get("stock_level") == 2 + len(deleted_levels)
    removed = query(
        stack,
        "SELECT subject, old_value FROM reconciliation_corrections"
        " WHERE shop = %s AND kind = 'variant' AND new_value = 'deleted' ORDER BY subject",
        store.domain,
    )
    assert sorted(removed) == sorted(
        [
            (
                f"variant {deleted['id']}",
                f"{deleted['sku']} · {deleted['productTitle']} / "
                f"{deleted['title']} · {deleted['price']}",
            ),
            (f"variant {ghost.variant_id}", "named by an order only"),
        ]
    ), removed
    assert kinds.get("order_line", 0) >= 3  # the edit, the refund, the new order's lines
    stale = query(
        stack,
        "SELECT old_value, new_value, reason FROM reconciliation_corrections"
        " WHERE shop = %s AND kind = 'stock_level' ORDER BY new_value, subject",
        store.domain,
    )
    assert stale[0][1] == "9999" and "inventory_levels/update" in stale[0][2]
    assert (str(held_before), "disconnected") in [row[:2] for row in stale[1:]], stale
    assert (
        scalar(stack, "SELECT status FROM reconciliations WHERE shop = %s", store.domain) == "done"
    )
    async with httpx.AsyncClient() as http:
        metrics = (await http.get(f"{stack.base_url}/metrics")).text
    assert re.search(
        r'stockpulse_reconciliation_corrections_total\{kind="stock_level"\} [1-9]', metrics
    )

    # The connection page tells the merchant the same, in the shop's time.
    grant(stack, store.domain)
    async with httpx.AsyncClient(timeout=10, headers=auth(stack)) as http:
        connection = (
            await http.get(f"{stack.base_url}/api/v1/shops/{store.domain}/connection")
        ).json()
        page = (await http.get(f"{stack.base_url}/shops/{store.domain}/connection")).text
    assert connection["mode"] == "client_credentials"
    assert connection["backfill"]["status"] == "done"
    assert connection["reconciliation"]["corrections"] == corrected
    assert connection["last_webhook_utc"] is not None
    assert any("inventory_levels/update" in c["reason"] for c in connection["recent_corrections"])
    assert "Recent corrections" in page and "9999" in page

    # An export line that cannot be read keeps its variant and its stock, and no other.
    unreadable = store.variants[3]
    price = unreadable["price"]
    unreadable["price"] = "not a price"
    unreadable_levels = [key for key in store.levels if key[0] == unreadable["inventoryItemId"]]
    held = levels(stack, store.domain)
    hidden = {key: store.levels.pop(key) for key in unreadable_levels}
    removed_too = store.variants.pop(5)
    removed_levels = {
        key: store.levels.pop(key)
        for key in list(store.levels)
        if key[0] == removed_too["inventoryItemId"]
    }
    partial = await run(stack, "reconcile", "--shop", store.domain)
    assert f"{len(removed_levels) + 1} corrected" in partial, partial
    assert unreadable["id"] in live_variants(stack, store.domain)
    assert removed_too["id"] not in live_variants(stack, store.domain)
    assert {k: levels(stack, store.domain)[k] for k in unreadable_levels} == {
        k: held[k] for k in unreadable_levels
    }
    unreadable["price"] = price
    store.levels.update(hidden)
    # A variant a pass deleted that Shopify lists again comes back, with its stock, although
    # what the export says of it is no newer than what was held.
    store.variants.append(removed_too)
    store.levels.update(removed_levels)
    restored = await run(stack, "reconcile", "--shop", store.domain)
    assert "Shopify lists the variant again" in restored, restored
    assert live_variants(stack, store.domain) == {v["id"] for v in store.variants}
    assert levels(stack, store.domain) == {
        **shopify_levels(store),
        newer_key: 4_242,
    }

    # A second pass finds nothing left to correct.
    again = await run(stack, "reconcile", "--shop", store.domain)
    assert " 0 corrected" in again, again
    assert units_but(stack, store.domain, ghost.variant_id) == shopify_units(store)
    assert live_variants(stack, store.domain) == {v["id"] for v in store.variants}

    # A pass whose process was killed (its session gone) keeps no shop from the next one: the
    # worker's child ends it as failed and runs its own. While another process reconciles the
    # shop, the child leaves it to that one.
    async with await psycopg.AsyncConnection.connect(
        stack.database_url, row_factory=dict_row, autocommit=True
    ) as killed:
        assert await reconciliations.take_pass_lock(killed, store.domain)
        orphan = await reconciliations.claim(killed, store.domain)
    out = await finished(await _worker_child(stack, store.domain))
    assert " 0 corrected" in out, out
    ((status, error),) = query(
        stack, "SELECT status, error FROM reconciliations WHERE id = %s", orphan
    )
    assert status == "failed" and "stopped during the pass" in error, (status, error)
    async with await psycopg.AsyncConnection.connect(
        stack.database_url, row_factory=dict_row, autocommit=True
    ) as live:
        assert await reconciliations.take_pass_lock(live, store.domain)
        busy = await _worker_child(stack, store.domain)
        assert await asyncio.wait_for(busy.wait(), 120) == EXIT_BUSY
        manual = await cli(stack, "reconcile", "--shop", store.domain)
        refused, _ = await asyncio.wait_for(manual.communicate(), 120)
        assert manual.returncode == 1 and b"running already" in refused, refused


async def _worker_child(stack: Stack, shop: str) -> asyncio.subprocess.Process:
    """A pass as the worker starts one."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "streams.reconcile",
        "--shop",
        shop,
        env={**os.environ, **stack.env()},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )


async def deliver_product_update(stack: Stack, store: FakeStore, product_id: int) -> None:
    """The products/update Shopify sends for ``product_id`` as the store now has it."""
    listed = [v for v in store.variants if v["productId"] == product_id]
    product = Product(
        product_id,
        listed[0]["productTitle"],
        [
            Variant(v["id"], product_id, v["inventoryItemId"], v["sku"], v["title"], v["price"])
            for v in listed
        ],
    )
    async with httpx.AsyncClient(timeout=10) as http:
        answer = await post_signed(
            http,
            stack,
            store.domain,
            "products/update",
            product_payload(product, datetime.now(UTC)),
            CLIENT_SECRET,
        )
    assert answer.status_code == 200, answer.text
    for _ in range(100):
        if scalar(
            stack,
            "SELECT count(*) FROM variants WHERE shop = %s AND product_id = %s"
            " AND updated_at > now() - interval '1 minute'",
            store.domain,
            product_id,
        ) == len(listed):
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the products/update was not applied")


def units_but(stack: Stack, shop: str, variant_id: int) -> dict[int, int]:
    return {v: n for v, n in units(stack, shop).items() if v != variant_id}


def live_variants(stack: Stack, shop: str) -> set[int]:
    return {
        row[0]
        for row in query(
            stack, "SELECT variant_id FROM variants WHERE shop = %s AND NOT deleted", shop
        )
    }


def shopify_units(store: FakeStore) -> dict[int, int]:
    """Units per variant as Shopify's orders say now, by the fake's own statement of the rule."""
    totals: dict[int, int] = {}
    for order in store.orders:
        for variant, n in expected_units(order).items():
            if n:
                totals[variant] = totals.get(variant, 0) + n
    return totals


async def deliver_level(
    stack: Stack, shop: str, key: tuple[int, int], available: int, updated_at: str
) -> None:
    level = {
        "inventory_item_id": key[0],
        "location_id": key[1],
        "available": available,
        "updated_at": updated_at,
    }
    async with httpx.AsyncClient(timeout=10) as http:
        answer = await post_signed(
            http, stack, shop, "inventory_levels/update", level, CLIENT_SECRET
        )
    assert answer.status_code == 200, answer.text
    for _ in range(100):
        if levels(stack, shop).get(key) == available:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the level webhook was not applied")


async def test_shop_redact_leaves_no_row_of_a_connected_backfilled_reconciled_shop(
    stack: Stack, fake_shopify: FakeShopify
) -> None:
    store = fake_shopify.add_store(
        f"redact{Ids.next()}.myshopify.com", client_id=CLIENT_ID, client_secret=CLIENT_SECRET
    )
    first_id = Ids.next()
    Ids._next += 400_000_000
    seed_catalogue(store, 5, variants_per_product=2, locations=2, first_id=first_id)
    seed_orders(
        store,
        40,
        variant_ids=[v["id"] for v in store.variants],
        days=30,
        refund_rate=0.2,
        first_id=first_id + 200_000_000,
    )
    await run(
        stack,
        *("connect", "--shop", store.domain, "--admin-url", fake_shopify.admin_url()),
        *("--client-id", CLIENT_ID, "--client-secret", CLIENT_SECRET, "--months", "2"),
    )
    set_level(store, *next(iter(store.levels)), 77)
    await run(stack, "reconcile", "--shop", store.domain)
    tables = [
        (table, column)
        for table, column in query(
            stack,
            "SELECT table_name, column_name FROM information_schema.columns"
            " WHERE table_schema = 'public' AND column_name IN ('shop', 'domain')",
        )
    ]
    held = {
        table: scalar(stack, f"SELECT count(*) FROM {table} WHERE {column} = %s", store.domain)
        for table, column in tables
    }
    for table in (
        "shops",
        "shop_credentials",
        "variants",
        "order_lines",
        "refund_lines",
        "inventory_levels",
        "locations",
        "backfills",
        "reconciliations",
        "reconciliation_corrections",
        "daily_demand",
    ):
        assert held.get(table), f"the shop had no {table} rows to erase"

    # An install begun and never finished, and the invitation limits' counters (which name
    # the shop and the invited addresses): an outside test found them left behind.
    scalar(
        stack,
        "INSERT INTO oauth_states (state_digest, shop) VALUES (%s, %s) RETURNING 1",
        f"state-{Ids.next()}".encode(),
        store.domain,
    )
    invite_keys = [f"invite:{store.domain}", f"invite:{store.domain}:viewer@example.com"]
    for key in invite_keys:
        scalar(stack, "INSERT INTO login_failures (key) VALUES (%s) RETURNING 1", key)

    redact = {"shop_id": 1, "shop_domain": store.domain}
    uninstall = {"id": 1, "myshopify_domain": store.domain}
    async with httpx.AsyncClient(timeout=10) as http:
        answer = await post_signed(
            http, stack, store.domain, "app/uninstalled", uninstall, CLIENT_SECRET
        )
        assert answer.status_code == 200, answer.text
        answer = await post_signed(http, stack, store.domain, "shop/redact", redact, CLIENT_SECRET)
    assert answer.status_code == 200, answer.text
    for _ in range(200):
        if not scalar(stack, "SELECT count(*) FROM shops WHERE domain = %s", store.domain):
            break
        await asyncio.sleep(0.1)
    left = {
        table: n
        for table, column in tables
        if (n := scalar(stack, f"SELECT count(*) FROM {table} WHERE {column} = %s", store.domain))
    }
    assert left == {}, f"rows of the erased shop remain: {left}"
    assert (
        scalar(stack, "SELECT count(*) FROM login_failures WHERE key = ANY(%s)", invite_keys) == 0
    )
