"""A real headless Chromium watches a product page follow the shop's feed: its figures, its
forecast and its alert history change as that product's webhooks arrive, and another
product's do not touch it."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from playwright.sync_api import Browser, Locator, expect

from ops.stack import Stack
from tests.e2e.test_dashboard_browser import CSP_WATCH
from tests.support import (
    Ids,
    browser_login,
    deliver_ok,
    make_variant,
    new_shop,
    order_hook,
    product_hook,
    query,
    sku_api,
    stock_hook,
    stock_of,
    wait_until,
)
from web.app import days_of_cover


def test_product_page_follows_its_own_webhooks_without_reload(
    stack: Stack, browser: Browser
) -> None:
    shop = new_shop(stack)
    # Alerts on stock at or under 5, fired at once, to nobody (the history shows them anyway).
    query(
        stack,
        "INSERT INTO shop_settings (shop, low_stock_threshold) VALUES (%s, 5) RETURNING shop",
        shop,
    )
    query(
        stack,
        "INSERT INTO alert_settings (shop, mode, digest_hour, cooldown_hours, rules)"
        " VALUES (%s, 'immediate', 8, 24, %s) RETURNING shop",
        shop,
        ["low_stock"],
    )
    mug, other = make_variant("LIVE-MUG"), make_variant("LIVE-CAP")
    earlier = datetime.now(UTC) - timedelta(minutes=5)
    for variant, level in ((mug, 30), (other, 50)):
        deliver_ok(stack, product_hook(shop, variant))
        deliver_ok(stack, stock_hook(shop, variant, level, earlier))
        wait_until(lambda v=variant, n=level: stock_of(stack, shop, v) == n, what="stock")

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.add_init_script(CSP_WATCH)
    browser_login(page, stack, f"/shops/{shop}/products/{mug.variant_id}")
    figure = page.locator("dl.figures").first

    def field(name: str) -> Locator:
        return figure.locator(f'[data-field="{name}"]')

    sales = page.locator('[data-chart="sales"]')
    expect(field("stock")).to_have_text("30")
    expect(field("sold_today")).to_have_text("0")
    expect(page.locator("#live")).to_have_attribute("data-state", "open")
    expect(page.locator("#alert-history-empty")).to_be_visible()
    page.evaluate("window.__sameDocument = true")  # lost if the page reloads

    deliver_ok(stack, stock_hook(shop, mug, 17, datetime.now(UTC)))
    expect(field("stock")).to_have_text("17", timeout=5000)

    order, _ = order_hook(shop, [(Ids.next(), mug, 4)])
    deliver_ok(stack, order)
    expect(field("sold_today")).to_have_text("4", timeout=5000)
    expect(field("sold_7d")).to_have_text("4")
    expect(field("sold_28d")).to_have_text("4")
    # The chart of this product draws today's actual (charts.js refetches on the feed event).
    expect(sales).to_have_attribute("data-today-units", "4", timeout=8000)

    # The forecast round after the order: its plan reaches the figures and the table live.
    wait_until(lambda: sku_api(stack, shop)[mug.variant_id]["plan_as_of"], what="a stored plan")
    time.sleep(1)  # the round after the order's batch comes within a quarter of a second
    plan = sku_api(stack, shop)[mug.variant_id]
    cover = days_of_cover(plan["days_of_cover"], plan["stock"])
    expect(field("days_of_cover")).to_have_text(cover, timeout=5000)
    # To the tenth, as the plan page, the alert and the API say it.
    expect(field("reorder_point")).to_have_text(f"{plan['reorder_point']:.1f}")
    expect(field("method")).to_have_text(plan["method"])
    expect(field("confidence")).to_have_text(plan["confidence"])
    expect(field("reorder_quantity")).to_have_text(str(plan["reorder_quantity"]))
    expect(field("stockout_date")).to_have_text(plan["stockout_date"] or "—")
    expect(page.locator("#forecast-table")).to_be_visible()
    expect(page.locator("#forecast-table tbody tr")).to_have_count(14)
    expect(page.locator("#forecast-empty")).to_be_hidden()

    # Another product's stock and sales go to its own page, not this one.
    deliver_ok(stack, stock_hook(shop, other, 9, datetime.now(UTC)))
    order, _ = order_hook(shop, [(Ids.next(), other, 2)])
    deliver_ok(stack, order)
    wait_until(lambda: sku_api(stack, shop)[other.variant_id]["sold_today"] == 2, what="sale")
    wait_until(lambda: stock_of(stack, shop, other) == 9, what="the other product's stock")
    time.sleep(1.5)  # its messages reach the page's socket well within this
    expect(field("stock")).to_have_text("17")
    expect(field("sold_today")).to_have_text("4")
    expect(sales).to_have_attribute("data-today-units", "4")

    # Stock under the threshold fires an alert: a new row on top of the history.
    deliver_ok(stack, stock_hook(shop, mug, 3, datetime.now(UTC)))
    expect(field("stock")).to_have_text("3", timeout=5000)
    row = page.locator('#alert-history tbody tr[data-rule="low_stock"]')
    expect(row).to_have_count(1, timeout=10000)
    expect(row.locator(".severity")).to_have_count(1)
    expect(page.locator("#alert-history")).to_be_visible()
    expect(page.locator("#alert-history-empty")).to_be_hidden()
    expect(page.locator("#alert-history caption .count")).to_have_text("1")

    assert page.evaluate("window.__sameDocument") is True
    assert page.evaluate("window.__csp") == []
    # The live row reads like the one the server renders.
    live_cells = row.locator("td").all_inner_texts()
    page.reload()
    rendered = page.locator('#alert-history tbody tr[data-rule="low_stock"]')
    expect(rendered).to_have_count(1)
    served_cells = rendered.locator("td").all_inner_texts()
    assert live_cells[:3] == served_cells[:3], (live_cells, served_cells)
    page.close()
