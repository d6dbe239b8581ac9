"""A merchant's morning in headless Chromium: sign up, be given a shop, see the dashboard,
open a product, download a report, change a setting, log out; every page photographed at
desktop and phone width."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime
from pathlib import Path

from playwright.sync_api import Browser, Page, expect

from ops.stack import Stack
from tests.conftest import ARTIFACTS
from tests.integration.test_forecasting import seed_history
from tests.support import (
    Ids,
    deliver_ok,
    grant,
    make_variant,
    new_shop,
    order_hook,
    product_hook,
    scalar,
    sku_api,
    stock_hook,
    verification_link,
    wait_until,
)

SCREENS = ARTIFACTS / "screens"
SIZES = {"desktop": (1280, 800), "phone": (390, 844)}
PASSWORD = "Morning-Coffee-31"


def photograph(page: Page, name: str) -> None:
    SCREENS.mkdir(parents=True, exist_ok=True)
    for size, (width, height) in SIZES.items():
        page.set_viewport_size({"width": width, "height": height})
        page.screenshot(path=str(SCREENS / f"{name}-{size}.png"), full_page=True)
        # Usable on a phone: nothing makes the page itself scroll sideways.
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"{name} is {overflow}px too wide at {size} width"
    page.set_viewport_size({"width": 1280, "height": 800})


def test_a_merchants_morning(stack: Stack, browser: Browser) -> None:
    shop = new_shop(stack)
    variant = make_variant("MORNING-TEE", price="25.00")
    deliver_ok(stack, product_hook(shop, variant))
    wait_until(lambda: variant.variant_id in sku_api(stack, shop), what="the product")
    seed_history(stack, shop, variant, [3, 4, 5, 4, 3, 6, 7] * 6, datetime.now(UTC).date())
    deliver_ok(stack, stock_hook(shop, variant, 30, datetime.now(UTC)))
    order, _ = order_hook(shop, [(Ids.next(), variant, 2)])
    deliver_ok(stack, order)
    wait_until(lambda: sku_api(stack, shop)[variant.variant_id]["plan_as_of"], what="a plan")

    page = browser.new_page(viewport={"width": 1280, "height": 800}, accept_downloads=True)
    email = f"merchant-{uuid.uuid4().hex[:8]}@example.com"
    page.goto(f"{stack.base_url}/shops/{shop}")
    expect(page).to_have_url(f"{stack.base_url}/login?next=/shops/{shop}")
    photograph(page, "login")
    page.click("text=Create an account")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", "onlylowercaseletters")  # long, but one kind only
    page.click("button[type=submit]")
    expect(page.locator(".error")).to_contain_text("mix at least three")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("Check your email")
    photograph(page, "signup-sent")
    # The link mailed to the address, confirmed with the account's password; then log in.
    page.goto(f"{stack.base_url}{verification_link(stack, email)}")
    expect(page.locator("h1")).to_have_text("Confirm your email address")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    expect(page).to_have_url(f"{stack.base_url}/login?verified=true")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("Your shops")
    expect(page.locator(".empty")).to_contain_text("stockpulse shops assign")
    photograph(page, "shops-empty")

    # The operator gives the new account the shop; the merchant's next visit shows it.
    grant(stack, shop, user_id=scalar(stack, "SELECT id FROM users WHERE email = %s", email))
    page.goto(f"{stack.base_url}/")
    expect(page).to_have_url(f"{stack.base_url}/shops/{shop}")
    row = page.locator(f'tr[data-variant="{variant.variant_id}"]')
    expect(row.locator('[data-field="stock"]')).to_have_text("30")
    expect(page.locator("#live")).to_have_attribute("data-state", "open")
    expect(page.locator('.dash-chart[data-chart="sales"] canvas').first).to_be_visible()
    photograph(page, "dashboard")

    page.click(f'tr[data-variant="{variant.variant_id}"] a[data-field="title"]')
    expect(page.locator("h1")).to_contain_text("MORNING-TEE")
    expect(page.locator("text=Planned with")).to_be_visible()
    photograph(page, "product")

    with page.expect_download() as download:
        page.click('a[href$="/reports/reorder-plan.csv"]')
    saved = download.value.path()
    rows = list(csv.DictReader(io.StringIO(Path(saved).read_text())))
    assert [r["sku"] for r in rows] == ["MORNING-TEE"]

    page.click("nav >> text=Settings")
    page.fill("input[name=lead_time_days]", "21")
    page.click("text=Save shop settings")
    expect(page.locator("input[name=lead_time_days]").first).to_have_value("21")
    assert scalar(stack, "SELECT lead_time_days FROM shop_settings WHERE shop = %s", shop) == 21
    photograph(page, "settings")

    page.click("nav >> text=Connection")
    expect(page.locator("h1")).to_have_text("Connection with Shopify")
    photograph(page, "connection")

    page.click("text=Log out")
    expect(page).to_have_url(f"{stack.base_url}/login")
    page.goto(f"{stack.base_url}/shops/{shop}")
    expect(page).to_have_url(f"{stack.base_url}/login?next=/shops/{shop}")
