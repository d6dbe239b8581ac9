"""One deployment, many stores: nothing of one store shows through another's paths."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import httpx

from ops.stack import Stack
from tests.support import (
    FeedClient,
    Ids,
    auth,
    deliver_ok,
    make_variant,
    new_shop,
    order_hook,
    product_hook,
    sku_api,
    stock_hook,
    wait_until,
)


async def test_pages_api_and_feed_of_one_store_show_nothing_of_another(stack: Stack) -> None:
    first, second = new_shop(stack), new_shop(stack)
    mine, theirs = make_variant("MINE-ONLY"), make_variant("THEIRS-ONLY")
    async with FeedClient(stack, first) as feed:
        for shop, variant in ((first, mine), (second, theirs)):
            await asyncio.to_thread(deliver_ok, stack, product_hook(shop, variant))
            await asyncio.to_thread(
                deliver_ok, stack, stock_hook(shop, variant, 9, datetime.now(UTC))
            )
            order, _ = order_hook(shop, [(Ids.next(), variant, 2)])
            await asyncio.to_thread(deliver_ok, stack, order)
        await asyncio.to_thread(
            wait_until,
            lambda: theirs.variant_id in sku_api(stack, second),
            20,
            "the other store's SKU",
        )
        await feed.wait_for(
            lambda m: m.get("type") == "forecast" and m["variant_id"] == mine.variant_id
        )
        await asyncio.sleep(1.0)  # anything of the other store's would have arrived by now
    assert feed.messages and all(m["shop"] == first for m in feed.messages if "shop" in m)
    assert theirs.variant_id not in {m.get("variant_id") for m in feed.messages}
    assert set(await asyncio.to_thread(sku_api, stack, first)) == {mine.variant_id}
    async with httpx.AsyncClient(timeout=10) as http:
        page = (await http.get(f"{stack.base_url}/shops/{first}", headers=auth(stack))).text
        rows = (await http.get(f"{stack.base_url}/shops/{first}/rows", headers=auth(stack))).text
    assert "MINE-ONLY" in page and "THEIRS-ONLY" not in page and "THEIRS-ONLY" not in rows
