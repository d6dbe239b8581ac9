"""A real headless Chromium watches the dashboard change live after a webhook."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect, sync_playwright

from ops.stack import Stack
from tests.conftest import ARTIFACTS
from tests.support import (
    Ids,
    browser_login,
    deliver_ok,
    make_variant,
    new_shop,
    order_hook,
    product_hook,
    sku_api,
    stock_hook,
    stock_of,
    wait_until,
)

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is not installed (Debian: apt-get install chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def test_stock_and_demand_cells_change_without_reload(stack: Stack, browser: Browser) -> None:
    shop = new_shop(stack)
    variant = make_variant("MUG-BLUE", price="12.00")
    deliver_ok(stack, product_hook(shop, variant))
    deliver_ok(stack, stock_hook(shop, variant, 30, datetime.now(UTC) - timedelta(minutes=5)))
    wait_until(lambda: stock_of(stack, shop, variant) == 30, what="initial stock")

    page = browser.new_page()
    browser_login(page, stack, f"/shops/{shop}")
    row = page.locator(f'tr[data-variant="{variant.variant_id}"]')
    expect(row.locator('[data-field="stock"]')).to_have_text("30")
    expect(row.locator('[data-field="sku"]')).to_have_text("MUG-BLUE")
    expect(page.locator("#live")).to_have_attribute("data-state", "open")
    page.evaluate("window.__sameDocument = true")  # lost if the page reloads

    deliver_ok(stack, stock_hook(shop, variant, 17, datetime.now(UTC)))
    expect(row.locator('[data-field="stock"]')).to_have_text("17", timeout=5000)

    order, _ = order_hook(shop, [(Ids.next(), variant, 4)])
    deliver_ok(stack, order)
    expect(row.locator('[data-field="sold_today"]')).to_have_text("4", timeout=5000)
    expect(row.locator('[data-field="sold_28d"]')).to_have_text("4")
    # The forecast round follows the order: its plan reaches the page live, and the cells show
    # what is stored (the API reads the same stored plan).
    wait_until(lambda: sku_api(stack, shop)[variant.variant_id]["plan_as_of"], what="a stored plan")
    time.sleep(1)  # the round after the order's batch comes within a quarter of a second
    plan = sku_api(stack, shop)[variant.variant_id]
    assert plan["days_of_cover_basis"] == "forecast"
    cover = "∞" if plan["days_of_cover"] is None else f"{plan['days_of_cover']:.1f}"
    expect(row.locator('[data-field="days_of_cover"]')).to_have_text(cover, timeout=5000)
    expect(row.locator('[data-field="confidence"]')).to_have_text(plan["confidence"])
    expect(row.locator('[data-field="reorder_quantity"]')).to_have_text(
        str(plan["reorder_quantity"])
    )
    expect(row.locator('[data-field="stockout_date"]')).to_have_text(plan["stockout_date"] or "—")

    # A product the page has never seen appears too (htmx reloads the rows, not the page).
    newcomer = make_variant("CAP-RED")
    deliver_ok(stack, product_hook(shop, newcomer))
    deliver_ok(stack, stock_hook(shop, newcomer, 9, datetime.now(UTC)))
    expect(
        page.locator(f'tr[data-variant="{newcomer.variant_id}"] [data-field="stock"]')
    ).to_have_text("9", timeout=5000)

    assert page.evaluate("window.__sameDocument") is True
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
    page.close()
