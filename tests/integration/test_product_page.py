"""A product's page and JSON: daily history with stockout days, the forecast and its
interval, the settings it is planned with; nothing of it for anybody else."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx

from connectors.db.shops import install_shop
from ops.stack import Stack
from tests.integration.test_forecasting import seed_history
from tests.support import (
    Ids,
    auth,
    deliver_ok,
    make_variant,
    new_shop,
    order_hook,
    plan_as_of,
    product_hook,
    query,
    stock_hook,
    wait_until,
)


def test_a_products_page_shows_its_history_stockouts_forecast_and_settings(stack: Stack) -> None:
    shop = new_shop(stack)
    variant = make_variant("PAGE-1")
    deliver_ok(stack, product_hook(shop, variant))
    wait_until(lambda: query(stack, "SELECT 1 FROM variants WHERE shop = %s", shop), what="sku")
    today = datetime.now(UTC).date()
    seed_history(stack, shop, variant, [4, 5, 6, 5, 4, 0, 0] * 5, today)
    # Sold out two days ago, restocked yesterday.
    two_days_ago = datetime.now(UTC) - timedelta(days=2)
    deliver_ok(stack, stock_hook(shop, variant, 0, two_days_ago))
    deliver_ok(stack, stock_hook(shop, variant, 40, datetime.now(UTC) - timedelta(days=1)))
    order, _ = order_hook(shop, [(Ids.next(), variant, 2)])
    deliver_ok(stack, order)
    wait_until(lambda: plan_as_of(stack, shop, variant.variant_id), what="a plan")

    api = httpx.get(
        f"{stack.base_url}/api/v1/shops/{shop}/products/{variant.variant_id}",
        headers=auth(stack),
        timeout=10,
    )
    assert api.status_code == 200, api.text
    story = api.json()
    days = {h["day"]: h for h in story["history"]}
    assert days[two_days_ago.date().isoformat()]["stockout"] is True
    assert days[today.isoformat()]["stockout"] is False and days[today.isoformat()]["units"] == 2
    # Out from two days ago until yesterday's restock: both days were short of stock a while.
    yesterday = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    assert days[yesterday]["stockout"] is True
    assert sum(1 for h in story["history"] if h["stockout"]) == 2
    # The history starts where the shop's does, not 120 days back with zeros nobody recorded.
    ((first_day,),) = query(stack, "SELECT min(day) FROM daily_demand WHERE shop = %s", shop)
    assert story["history"][0]["day"] == first_day.isoformat()
    assert len(story["history"]) == (today - first_day).days + 1 < 120
    forecast = story["forecast"]
    assert len(forecast["mean"]) == len(forecast["lower"]) == len(forecast["upper"]) >= 28
    # (The low-history model's 80 % band comes from residual quantiles and may sit a little
    # above a biased mean; the band's own order always holds.)
    assert all(lo <= hi for lo, hi in zip(forecast["lower"], forecast["upper"], strict=True))
    assert story["settings"]["lead_time_days"] >= 1
    assert story["product"]["sku"] == "PAGE-1"

    page = httpx.get(
        f"{stack.base_url}/shops/{shop}/products/{variant.variant_id}",
        headers=auth(stack),
        timeout=10,
    )
    assert page.status_code == 200
    assert "yes, some of the day" in page.text and "80 % interval" in page.text
    assert "Planned with" in page.text


def test_a_product_of_another_shop_or_none_is_not_found(stack: Stack) -> None:
    strangers = f"s{uuid.uuid4().hex[:12]}.myshopify.com"
    install_shop(stack.database_url, strangers)
    variant = make_variant("THEIRS")
    deliver_ok(stack, product_hook(strangers, variant))
    wait_until(
        lambda: query(stack, "SELECT 1 FROM variants WHERE shop = %s", strangers), what="sku"
    )
    mine = new_shop(stack)
    for path in (
        f"/api/v1/shops/{strangers}/products/{variant.variant_id}",
        f"/api/v1/shops/{mine}/products/{variant.variant_id}",  # their product under my shop
        f"/shops/{mine}/products/{Ids.next()}",
    ):
        answer = httpx.get(stack.base_url + path, headers=auth(stack), timeout=10)
        assert answer.status_code == 404, path
        assert "THEIRS" not in answer.text


def test_a_plan_raised_by_last_years_season_says_so_on_its_page(stack: Stack) -> None:
    shop = new_shop(stack)
    variant = make_variant("PAGE-SEASON")
    deliver_ok(stack, product_hook(shop, variant))
    deliver_ok(stack, stock_hook(shop, variant, 40, datetime.now(UTC)))
    wait_until(lambda: plan_as_of(stack, shop, variant.variant_id), what="a plan")
    url = f"{stack.base_url}/shops/{shop}/products/{variant.variant_id}"
    assert "year-end season" not in httpx.get(url, headers=auth(stack), timeout=10).text
    # As a nightly run in December stores it (streams.refit, models.season). The worker may
    # still be refreshing the plan from the two webhooks, from a run without a season: set it
    # again until a refresh no longer overwrites it.
    season = [1.25] * 7 + [1.8] * 7 + [1.0] * 76

    def page_with_season() -> str | None:
        assert query(
            stack,
            "UPDATE sku_plans SET season = %s WHERE shop = %s AND variant_id = %s RETURNING 1",
            season,
            shop,
            variant.variant_id,
        )
        page = httpx.get(url, headers=auth(stack), timeout=10)
        assert page.status_code == 200
        api = httpx.get(
            f"{stack.base_url}/api/v1/shops/{shop}/products/{variant.variant_id}",
            headers=auth(stack),
            timeout=10,
        ).json()
        # Page and API read the same stored plan: both show the season, or a refresh came
        # between them and the loop sets it again.
        shown = "year-end season from last year" in page.text
        stored = (api["forecast"]["season"] or [])[:8] == [1.25] * 7 + [1.8]
        return page.text if shown and stored else None

    text = wait_until(page_with_season, what="the page and the API with the season")
    assert "×1.25 to ×1.80" in text
