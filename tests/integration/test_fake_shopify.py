"""The fake Shopify's Admin API over real HTTP: locations, catalogue and order exports with
their JSONL shape, search filters, refunds, a bulk operation that takes its time, the demo
store and the standalone server."""

from __future__ import annotations

import asyncio
import json
import random
import signal
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from ops import demo_store
from ops.embedded import free_port
from ops.fake_shopify import (
    BULK_BUSY,
    FakeShopify,
    FakeStore,
    add_refund,
    edit_line,
    seed_catalogue,
    seed_orders,
    set_level,
)
from ops.shopify_payloads import inventory_level_payload, order_payload, refund_payload

SHOP = "fake-api.myshopify.com"
TOKEN = "shpat_test"
ROOT = Path(__file__).resolve().parents[2]
RUN = (
    "mutation Run($query: String!) { bulkOperationRunQuery(query: $query) {"
    " bulkOperation { id status url query createdAt } userErrors { field message } } }"
)
POLL = "{ currentBulkOperation { id status url objectCount errorCode query createdAt } }"
LOCATIONS = (
    "query L($first: Int!, $after: String, $all: Boolean) {"
    " locations(first: $first, after: $after, includeInactive: $all) {"
    " nodes { id name isActive } pageInfo { hasNextPage endCursor } } }"
)
CATALOGUE = "{ productVariants { edges { node { id } } } }"


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakeShopify, FakeStore]]:
    server = FakeShopify()
    store = server.add_store(SHOP)
    store.tokens.add(TOKEN)
    await server.start()
    yield server, store
    await server.stop()


async def gql(
    http: httpx.AsyncClient, server: FakeShopify, document: str, /, **variables: Any
) -> dict[str, Any]:
    answer = await http.post(
        f"{server.base_url}/shops/{SHOP}/admin/api/2025-10/graphql.json",
        json={"query": document, "variables": variables},
        headers={"X-Shopify-Access-Token": TOKEN},
    )
    answer.raise_for_status()
    body = answer.json()
    assert "errors" not in body, body["errors"]
    return dict(body["data"])


async def export(http: httpx.AsyncClient, server: FakeShopify, query: str) -> list[dict]:
    """Run a bulk query to completion; its JSONL lines, parsed."""
    started = (await gql(http, server, RUN, query=query))["bulkOperationRunQuery"]
    assert started["userErrors"] == [], started
    operation = (await gql(http, server, POLL))["currentBulkOperation"]
    assert operation["status"] == "COMPLETED" and operation["query"] == query
    if operation["url"] is None:
        assert operation["objectCount"] == "0"
        return []
    text = (await http.get(operation["url"])).text
    lines = [json.loads(line) for line in text.splitlines()]
    assert int(operation["objectCount"]) == len(lines)
    return lines


def orders_query(search: str) -> str:
    return (
        f'{{ orders(query: "{search}") {{ edges {{ node {{ id lineItems {{ edges {{ node {{ id'
        " } } } refunds { id refundLineItems { edges { node { quantity } } } } } } } }"
    )


async def test_locations_page_and_leave_out_inactive_ones_unless_asked(fake) -> None:
    server, store = fake
    seed_catalogue(store, 1, locations=5)
    store.locations[1]["isActive"] = False
    async with httpx.AsyncClient(timeout=5) as http:
        seen: list[dict] = []
        after = None
        while True:
            page = (await gql(http, server, LOCATIONS, first=2, after=after, all=True))["locations"]
            seen += page["nodes"]
            if not page["pageInfo"]["hasNextPage"]:
                break
            after = page["pageInfo"]["endCursor"]
        active = (await gql(http, server, LOCATIONS, first=10))["locations"]["nodes"]
    assert [n["id"] for n in seen] == [
        f"gid://shopify/Location/{loc['id']}" for loc in store.locations
    ]
    assert seen[0] == {
        "id": "gid://shopify/Location/53000001",
        "name": "Location 1",
        "isActive": True,
    }
    assert [n["isActive"] for n in seen] == [True, False, True, True, True]
    assert len(active) == 4 and all(n["isActive"] for n in active)


async def test_the_catalogue_export_is_each_variant_then_its_levels(fake) -> None:
    server, store = fake
    seed_catalogue(store, 4, variants_per_product=2, locations=2)
    store.variants[0]["tracked"] = False
    first = store.variants[0]
    newest = max(level["updatedAt"] for level in store.levels.values())
    stamp = set_level(store, first["inventoryItemId"], store.locations[1]["id"], 7)
    assert stamp > newest
    assert set_level(store, first["inventoryItemId"], store.locations[1]["id"], 6) > stamp
    async with httpx.AsyncClient(timeout=5) as http:
        lines = await export(http, server, "{ productVariants { edges { node { id sku } } } }")
    assert len(lines) == 8 + 16
    root = lines[0]
    gid = f"gid://shopify/ProductVariant/{first['id']}"
    assert root == {
        "id": gid,
        "sku": first["sku"],
        "title": "Option 1",
        "price": first["price"],
        "updatedAt": first["updatedAt"],
        "product": {
            "id": f"gid://shopify/Product/{first['productId']}",
            "title": "Product 1",
            "status": "ACTIVE",
            "updatedAt": first["productUpdatedAt"],
        },
        "inventoryItem": {
            "id": f"gid://shopify/InventoryItem/{first['inventoryItemId']}",
            "tracked": False,
        },
    }
    assert lines[1:3] == [
        {
            "location": {"id": f"gid://shopify/Location/{location['id']}"},
            "quantities": [{"name": "available", "quantity": level["available"]}],
            "updatedAt": level["updatedAt"],
            "__parentId": gid,
        }
        for location in store.locations
        for level in [store.levels[(first["inventoryItemId"], location["id"])]]
    ]
    assert lines[2]["quantities"][0]["quantity"] == 6
    ids = {v["id"] for v in store.variants} | {v["inventoryItemId"] for v in store.variants}
    assert len(ids) == 16 and not ids & {p for p in range(50_000_001, 50_000_005)}


async def test_orders_export_filters_by_created_and_updated_at_and_carries_refunds(
    fake,
) -> None:
    server, store = fake

    def order(number: int, created: str, updated: str) -> dict:
        return {
            "id": number,
            "createdAt": created,
            "updatedAt": updated,
            "cancelledAt": None,
            "test": False,
            "lineItems": [
                {
                    "id": number * 10 + i,
                    "quantity": 3,
                    "currentQuantity": 3,
                    "sku": f"S{i}",
                    "name": f"Thing {i}",
                    "variantId": 700 + i,
                    "productId": 800,
                    "price": "12.50",
                }
                for i in (1, 2)
            ],
        }

    # An hour ago, as a search writes it; the edits and refunds below happen now.
    hour_ago = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    store.orders = [
        order(1, "2024-11-22T23:30:00+00:00", "2024-11-22T23:30:00+00:00"),
        order(2, "2024-11-23T00:00:00Z", hour_ago),
        order(3, "2024-11-24T08:00:00+00:00", "2024-11-24T08:00:00+00:00"),
    ]
    add_refund(store, 3, 91, 32, 2, "RETURN")
    add_refund(store, 3, 92, 31, 1, "NO_RESTOCK")
    edit_line(store, 1, 11, 1)
    assert store.orders[2]["lineItems"][1]["currentQuantity"] == 1  # 3 less the 2 returned
    assert store.orders[2]["lineItems"][0]["currentQuantity"] == 2  # goodwill refunds too
    refunded = store.orders[2]
    assert refunded["updatedAt"] == refunded["refunds"][1]["createdAt"]

    async with httpx.AsyncClient(timeout=5) as http:

        async def exported(search: str) -> list[int]:
            lines = await export(http, server, orders_query(search))
            return [int(r["id"].rsplit("/", 1)[1]) for r in lines if "createdAt" in r]

        assert await exported("created_at:>='2024-11-23'") == [2, 3]
        assert await exported("created_at:>2024-11-23") == [3]
        assert await exported("created_at:>='2024-11-23T01:00:00+01:00'") == [2, 3]
        assert await exported("created_at:>='2024-11-22T23:00:00'") == [1, 2, 3]
        assert await exported(f"updated_at:>'{hour_ago}'") == [1, 3]
        assert await exported(f"updated_at:>={hour_ago}") == [1, 2, 3]
        assert await exported("created_at:>='2024-11-23' created_at:<'2024-11-24'") == [2]
        assert await exported("status:any") == [1, 2, 3]
        assert await exported("created_at:>='2030-01-01'") == []

        lines = await export(http, server, orders_query("created_at:>='2024-11-24'"))
    assert lines[0] == {
        "id": "gid://shopify/Order/3",
        "createdAt": "2024-11-24T08:00:00+00:00",
        "updatedAt": refunded["updatedAt"],
        "cancelledAt": None,
        "test": False,
        "refunds": [
            {"id": "gid://shopify/Refund/91", "createdAt": refunded["refunds"][0]["createdAt"]},
            {"id": "gid://shopify/Refund/92", "createdAt": refunded["refunds"][1]["createdAt"]},
        ],
    }
    assert lines[1] == {
        "id": "gid://shopify/LineItem/31",
        "quantity": 3,
        "currentQuantity": 2,
        "sku": "S1",
        "name": "Thing 1",
        "variant": {"id": "gid://shopify/ProductVariant/701"},
        "product": {"id": "gid://shopify/Product/800"},
        "originalUnitPriceSet": {"shopMoney": {"amount": "12.50"}},
        "__parentId": "gid://shopify/Order/3",
    }
    assert lines[2]["currentQuantity"] == 1
    assert lines[3:] == [
        {
            "lineItem": {"id": "gid://shopify/LineItem/32"},
            "quantity": 2,
            "restockType": "RETURN",
            "__parentId": "gid://shopify/Refund/91",
        },
        {
            "lineItem": {"id": "gid://shopify/LineItem/31"},
            "quantity": 1,
            "restockType": "NO_RESTOCK",
            "__parentId": "gid://shopify/Refund/92",
        },
    ]


async def test_a_slow_bulk_operation_runs_then_completes_and_blocks_another(fake) -> None:
    server, store = fake
    store.bulk_polls_before_done = 2
    seed_orders(store, 20)
    query = orders_query("created_at:>='2020-01-01'")
    async with httpx.AsyncClient(timeout=5) as http:
        started = (await gql(http, server, RUN, query=query))["bulkOperationRunQuery"]
        assert started["userErrors"] == []
        assert started["bulkOperation"]["status"] == "CREATED"
        assert started["bulkOperation"]["query"] == query
        datetime.fromisoformat(started["bulkOperation"]["createdAt"])
        store.orders.clear()  # the export was taken when the operation started
        for _ in range(2):
            running = (await gql(http, server, POLL))["currentBulkOperation"]
            assert (running["status"], running["url"]) == ("RUNNING", None)
            refused = (await gql(http, server, RUN, query=CATALOGUE))["bulkOperationRunQuery"]
            assert refused["bulkOperation"] is None
            assert "already in progress" in refused["userErrors"][0]["message"]
            assert refused["userErrors"][0]["message"].startswith(BULK_BUSY)
        done = (await gql(http, server, POLL))["currentBulkOperation"]
        assert done["status"] == "COMPLETED" and done["id"] == started["bulkOperation"]["id"]
        text = (await http.get(done["url"])).text
        assert len(text.splitlines()) == int(done["objectCount"]) > 20
        store.bulk_polls_before_done = 0
        again = (await gql(http, server, RUN, query=CATALOGUE))["bulkOperationRunQuery"]
        assert again["userErrors"] == []
        unsupported = await gql(http, server, RUN, query="{ customers { edges { node { id } } } }")
    assert unsupported["bulkOperationRunQuery"]["userErrors"][0]["message"] == "unsupported"


async def test_seeded_orders_with_refunds_expect_what_the_export_says(fake) -> None:
    server, store = fake
    seed_catalogue(store, 5, variants_per_product=2, locations=1)
    variant_ids = [v["id"] for v in store.variants]
    expected = seed_orders(store, 600, variant_ids=variant_ids, refund_rate=0.5, days=30)
    refunds = [r for o in store.orders for r in o["refunds"]]
    kinds = {line["restockType"] for r in refunds for line in r["lines"]}
    assert 200 < len(refunds) < 400 and kinds == {"RETURN", "NO_RESTOCK"}
    assert set(expected) <= set(variant_ids)
    async with httpx.AsyncClient(timeout=5) as http:
        lines = await export(http, server, orders_query("created_at:>='2000-01-01'"))

    # The rule, worked out again from the export alone.
    units: dict[int, int] = {}
    order: dict = {}
    sold: dict[str, dict] = {}
    restocked: dict[str, int] = {}
    kept: dict[str, int] = {}

    def close() -> None:
        if order and not order["cancelledAt"]:
            for line_id, line in sold.items():
                variant = int(line["variant"]["id"].rsplit("/", 1)[1])
                held = min(
                    line["currentQuantity"] + kept.get(line_id, 0),
                    line["quantity"] - restocked.get(line_id, 0),
                )
                units[variant] = units.get(variant, 0) + held

    for line in lines:
        if "createdAt" in line:
            close()
            order, sold, restocked, kept = line, {}, {}, {}
        elif "lineItem" in line:
            key = line["lineItem"]["id"]
            if line["restockType"] in ("RETURN", "CANCEL", "LEGACY_RESTOCK"):
                restocked[key] = restocked.get(key, 0) + line["quantity"]
            else:
                kept[key] = kept.get(key, 0) + line["quantity"]
        else:
            sold[line["id"]] = line
    close()
    assert units == expected
    named = {v["id"]: v for v in store.variants}
    item = store.orders[0]["lineItems"][0]
    assert item["sku"] == named[item["variantId"]]["sku"]
    assert item["productId"] == named[item["variantId"]]["productId"]

    plain = FakeStore("plain.myshopify.com")
    seed_orders(plain, 50)
    assert not any(o["refunds"] for o in plain.orders)


async def test_what_a_simulator_posts_shows_in_the_exports(fake) -> None:
    server, store = fake
    _, skus = demo_store.build_catalogue(random.Random(1))
    variant = skus[0].variant
    created = datetime.now(UTC) - timedelta(minutes=5)
    base = f"{server.base_url}/_fake/shops/{SHOP}"
    async with httpx.AsyncClient(timeout=5) as http:
        placed = order_payload(41, created, [(42, variant, 2)], location_id=7)
        assert (await http.post(f"{base}/orders", json=placed)).status_code == 200
        refund = refund_payload(43, 41, created + timedelta(minutes=1), [(42, variant, 1)])
        assert (await http.post(f"{base}/refunds", json=refund)).status_code == 200
        level = inventory_level_payload(variant.inventory_item_id, 7, 33, created)
        assert (await http.post(f"{base}/levels", json=level)).status_code == 200
        bad = await http.post(f"{base}/refunds", json={**refund, "order_id": 999})
        assert bad.status_code == 422
        assert (await http.get(base)).json()["orders"] == 1
        lines = await export(http, server, orders_query(""))
    assert [line.get("restockType") for line in lines] == [None, None, "RETURN"]
    assert lines[1]["currentQuantity"] == 1
    assert lines[0]["updatedAt"] == refund["created_at"]
    assert store.levels[(variant.inventory_item_id, 7)] == {
        "available": 33,
        "updatedAt": level["updated_at"],
    }


async def test_the_standalone_server_serves_the_demo_store_until_sigterm() -> None:
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "ops.fake_shopify", "--port", str(port)),
        *("--shop", demo_store.SHOP, "--client-id", "demo-id", "--client-secret", "demo-secret"),
        *("--demo-history-days", "90"),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        assert process.stdout is not None
        ready = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
        base = f"http://127.0.0.1:{port}"
        assert base in ready, ready
        async with httpx.AsyncClient(timeout=5) as http:
            grant = await http.post(
                f"{base}/shops/{demo_store.SHOP}/admin/oauth/access_token",
                data={
                    "grant_type": "client_credentials",
                    "client_id": "demo-id",
                    "client_secret": "demo-secret",
                },
            )
            token = grant.json()["access_token"]
            answer = await http.post(
                f"{base}/shops/{demo_store.SHOP}/admin/api/2025-10/graphql.json",
                json={"query": "{ shop { name } locations(first: 5) { nodes { id name } } }"},
                headers={"X-Shopify-Access-Token": token},
            )
            summary = (await http.get(f"{base}/_fake/shops/{demo_store.SHOP}")).json()
        data = answer.json()["data"]
        assert data["shop"]["name"] == "Demo Store"
        assert data["locations"]["nodes"] == [
            {"id": f"gid://shopify/Location/{demo_store.LOCATION_ID}", "name": "Demo Warehouse"}
        ]
        assert summary["variants"] == 12 and summary["levels"] == 12
        assert 90 * 8 < summary["orders"] < 90 * 40, summary
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        said = (await asyncio.wait_for(process.communicate(), 10))[0].decode()
    assert process.returncode == 0, said
    assert "Traceback" not in said


LIVE_ORDER = 5_000_000_001  # an id the seeded history does not use


async def _serve_demo(port: int, state: Path) -> asyncio.subprocess.Process:
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "ops.fake_shopify", "--port", str(port)),
        *("--shop", demo_store.SHOP, "--demo-history-days", "30", "--state", str(state)),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert process.stdout is not None
    while b"serving" not in (line := await asyncio.wait_for(process.stdout.readline(), 30)):
        assert line, "the fake Shopify exited before serving"
    return process


async def _stop(process: asyncio.subprocess.Process) -> str:
    process.send_signal(signal.SIGTERM)
    said = (await asyncio.wait_for(process.communicate(), 10))[0].decode()
    assert process.returncode == 0 and "Traceback" not in said, said
    return said


async def test_a_restarted_demo_goes_on_from_what_its_simulator_recorded(tmp_path: Path) -> None:
    """The demo's fake came back from every restart with its seeded stock and orders, and its
    simulator with its seeded stock: the stock rose by what had sold, with no restock, and
    reconciliation "corrected" our figures to the fake's (an outside test)."""
    from ops.simulator import StoreSimulator

    port, state = free_port(), tmp_path / "fake-shopify.json"
    base = f"http://127.0.0.1:{port}/_fake/shops/{demo_store.SHOP}"
    _, skus = demo_store.build_catalogue(random.Random(demo_store.SEED))
    sold = skus[0].variant
    process = await _serve_demo(port, state)
    try:
        async with httpx.AsyncClient(timeout=5) as http:
            before = (await http.get(base)).json()
            placed = order_payload(LIVE_ORDER, datetime.now(UTC), [(LIVE_ORDER + 1, sold, 2)])
            assert (await http.post(f"{base}/orders", json=placed)).status_code == 200
            level = inventory_level_payload(
                sold.inventory_item_id, demo_store.LOCATION_ID, 3, datetime.now(UTC)
            )
            assert (await http.post(f"{base}/levels", json=level)).status_code == 200
    finally:
        await _stop(process)
    process = await _serve_demo(port, state)
    try:
        async with httpx.AsyncClient(timeout=5) as http:
            after = (await http.get(base)).json()
        assert after["orders"] == before["orders"] + 1 and after["levels"] == before["levels"]
        simulator = StoreSimulator(
            "http://127.0.0.1:1", demo_store.SHOP, "secret", mirror_url=f"http://127.0.0.1:{port}"
        )
        async with httpx.AsyncClient(timeout=5) as http:
            await simulator.resume_stock(http)
        stock = {s.variant.inventory_item_id: s.stock for s in simulator.skus}
        assert stock[sold.inventory_item_id] == 3
        assert stock[skus[1].variant.inventory_item_id] == skus[1].stock  # as seeded
    finally:
        await _stop(process)
    # A kept store that cannot be read is set aside, and the demo starts afresh.
    state.write_text('{"name": "cut short')
    process = await _serve_demo(port, state)
    try:
        async with httpx.AsyncClient(timeout=5) as http:
            assert (await http.get(base)).json()["variants"] == before["variants"]
    finally:
        said = await _stop(process)
    assert state.with_suffix(".bad").exists(), said


def test_the_demo_history_is_the_same_whenever_it_is_made() -> None:
    _, skus = demo_store.build_catalogue(random.Random(demo_store.SEED))
    now = datetime.now(UTC)
    earlier = {o.order["id"]: o for o in demo_store.history(skus, 30, now - timedelta(days=2))}
    later = {o.order["id"]: o for o in demo_store.history(skus, 30, now)}
    shared = earlier.keys() & later.keys()
    assert len(shared) > 20 * 8
    assert all(earlier[i].order["line_items"] == later[i].order["line_items"] for i in shared)
    assert min(later) > demo_store.HISTORY_IDS
    assert max(later) < demo_store.HISTORY_IDS * 2
    refunded = [o for o in later.values() if o.refunds]
    cancelled = [o for o in later.values() if o.order["cancelled_at"]]
    assert refunded and cancelled
    # Busier on Saturdays than on Mondays, over weeks.
    weekday = [0] * 7
    for past in demo_store.history(skus, 84, now):
        weekday[datetime.fromisoformat(past.order["created_at"]).weekday()] += 1
    assert weekday[5] > weekday[0] * 1.3, weekday
