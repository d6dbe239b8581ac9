"""A real headless Chromium watches the dashboard change live after a webhook."""

from __future__ import annotations

import dataclasses
import time
from datetime import UTC, datetime, timedelta

from playwright.sync_api import Browser, Page, expect

from ops.shopify_payloads import signed_webhook
from ops.stack import Stack
from tests.conftest import ARTIFACTS
from tests.integration.test_forecasting import seed_history
from tests.support import (
    SECRET,
    Ids,
    browser_login,
    deliver_ok,
    make_variant,
    new_shop,
    order_hook,
    product_hook,
    scalar,
    sku_api,
    stock_hook,
    stock_of,
    wait_until,
)
from web.app import days_of_cover


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
    # Renamed in Shopify: the title and SKU follow with the next update, still live.
    renamed = dataclasses.replace(variant, sku="MUG-NAVY")
    deliver_ok(stack, product_hook(shop, renamed))
    deliver_ok(stack, stock_hook(shop, variant, 16, datetime.now(UTC)))
    expect(row.locator('[data-field="sku"]')).to_have_text("MUG-NAVY", timeout=5000)
    expect(row.locator('[data-field="title"]')).to_contain_text("Product MUG-NAVY")

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
    cover = days_of_cover(plan["days_of_cover"], plan["stock"])
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

    # A product deleted in Shopify leaves the table, still without a reload.
    deliver_ok(
        stack,
        signed_webhook("products/delete", shop, {"id": newcomer.product_id}, SECRET),
    )
    expect(page.locator(f'tr[data-variant="{newcomer.variant_id}"]')).to_have_count(0, timeout=5000)
    expect(row).to_have_count(1)

    assert page.evaluate("window.__sameDocument") is True
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
    page.close()


SCREENS = ARTIFACTS / "screens"
# Reports violations to the page, with the directive that blocked them.
CSP_WATCH = (
    "window.__csp = [];"
    "document.addEventListener('securitypolicyviolation',"
    " (e) => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));"
)


def test_charts_draw_and_follow_orders_and_stock_without_reload(
    stack: Stack, browser: Browser
) -> None:
    shop = new_shop(stack)
    variant = make_variant("CHART-TEE")
    deliver_ok(stack, product_hook(shop, variant))
    deliver_ok(stack, stock_hook(shop, variant, 40, datetime.now(UTC) - timedelta(minutes=5)))
    wait_until(lambda: stock_of(stack, shop, variant) == 40, what="initial stock")
    today = scalar(
        stack, "SELECT (now() AT TIME ZONE timezone)::date FROM shops WHERE domain = %s", shop
    )
    seed_history(stack, shop, variant, [2, 3, 4, 3, 2, 5, 6] * 8, today)
    nobody_bought = new_shop(stack)
    complaints: list[str] = []
    SCREENS.mkdir(parents=True, exist_ok=True)

    def open_dashboard(width: int, height: int, of_shop: str = shop) -> Page:
        page = browser.new_page(viewport={"width": width, "height": height})
        page.on(
            "console",
            lambda m: complaints.append(m.text) if m.type in ("error", "warning") else None,
        )
        page.add_init_script(CSP_WATCH)
        browser_login(page, stack, f"/shops/{of_shop}")
        return page

    page = open_dashboard(1280, 800)
    sales = page.locator('[data-chart="sales"]')
    stock = page.locator('[data-chart="stock"]')
    for chart in (sales, stock):
        expect(chart).to_have_attribute("data-state", "ready")
        expect(chart.locator("canvas")).to_have_count(1)
    expect(sales).to_have_attribute("data-today-units", "0")
    expect(page.locator("#live")).to_have_attribute("data-state", "open")
    page.evaluate("window.__sameDocument = true")  # lost if the page reloads

    order, _ = order_hook(shop, [(Ids.next(), variant, 4)])
    deliver_ok(stack, order)
    expect(sales).to_have_attribute("data-today-units", "4", timeout=8000)
    order, _ = order_hook(shop, [(Ids.next(), variant, 3)])
    deliver_ok(stack, order)
    expect(sales).to_have_attribute("data-today-units", "7", timeout=8000)
    # What uPlot draws: today's point of the "Sold" series.
    assert page.evaluate("window.stockpulseCharts.sales.todayUnits") == 7

    deliver_ok(stack, stock_hook(shop, variant, 12, datetime.now(UTC)))
    # Polled from here: wait_for_function evaluates a string, which the policy refuses.
    wait_until(
        lambda: page.evaluate("window.stockpulseCharts.stock.products[0].stock") == 12,
        timeout_s=8,
        what="the stock chart's bar to follow the new level",
    )
    assert page.evaluate("window.__sameDocument") is True
    assert page.evaluate("window.__csp") == []
    page.screenshot(path=str(SCREENS / "dashboard-desktop.png"))
    page.close()

    phone = open_dashboard(390, 844)
    for chart in ("sales", "stock"):
        canvas = phone.locator(f'[data-chart="{chart}"] canvas')
        expect(canvas).to_have_count(1)
        box = canvas.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390, box
    expect(phone.locator('[data-chart="sales"]')).to_have_attribute("data-today-units", "7")
    assert phone.evaluate("window.__csp") == []
    phone.screenshot(path=str(SCREENS / "dashboard-phone.png"))
    phone.close()

    # A failed fetch says so and offers another try; a shop without sales says why.
    empty = browser.new_page(viewport={"width": 1280, "height": 800})
    empty.add_init_script(CSP_WATCH)
    empty.route("**/charts/sales*", lambda route: route.fulfill(status=503, body="away"))
    browser_login(empty, stack, f"/shops/{nobody_bought}")
    chart = empty.locator('[data-chart="sales"]')
    expect(chart).to_have_attribute("data-state", "error")
    empty.unroute("**/charts/sales*")
    chart.get_by_role("button", name="Try again").click()
    expect(chart).to_have_attribute("data-state", "empty")
    expect(chart.locator(".dash-chart-status")).to_contain_text("No sales yet")
    expect(empty.locator('[data-chart="stock"]')).to_have_attribute("data-state", "empty")
    assert empty.evaluate("window.__csp") == []
    empty.close()
    assert not [c for c in complaints if "Content Security Policy" in c], complaints
