"""The dashboard's chart API: units sold per shop-local day as daily_demand holds them, the
forecast ahead summed over SKUs with their 80 % bands combined as independent, stock per
product by days of cover, parameter checks and who may read them."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
from psycopg.types.json import Jsonb

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
    product_hook,
    query,
    scalar,
    stock_hook,
    units_sold,
    wait_until,
)

# The worker writes a plan only over an older one (connectors/db/plans.py); plans stamped in
# the future are the tests' own, whatever forecast round runs meanwhile.
PLANTED_AS_OF = "now() + interval '1 day'"


def charts(stack: Stack, shop: str, chart: str, **params: Any) -> httpx.Response:
    return httpx.get(
        f"{stack.base_url}/api/v1/shops/{shop}/charts/{chart}",
        params=params,
        headers=auth(stack),
        timeout=10,
    )


def shop_today(stack: Stack, shop: str) -> date:
    return scalar(
        stack, "SELECT (now() AT TIME ZONE timezone)::date FROM shops WHERE domain = %s", shop
    )


def stored_units(stack: Stack, shop: str, variant_id: int | None = None) -> dict[date, int]:
    rows = query(
        stack,
        "SELECT day, sum(units)::int FROM daily_demand WHERE shop = %s"
        " AND (%s::bigint IS NULL OR variant_id = %s) GROUP BY day",
        shop,
        variant_id,
        variant_id,
    )
    return {day: units for day, units in rows if units}


def planted_variant(
    stack: Stack, shop: str, product_id: int, title: str, sku: str, *, deleted: bool = False
) -> int:
    variant_id = Ids.next()
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO variants (shop, variant_id, product_id, sku, product_title,"
            " variant_title, inventory_item_id, deleted, updated_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, now())",
            (shop, variant_id, product_id, sku, title, sku, variant_id, deleted),
        )
    return variant_id


def planted_level(stack: Stack, shop: str, variant_id: int, available: int) -> None:
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO inventory_levels (shop, inventory_item_id, location_id, available,"
            " updated_at) VALUES (%s, %s, 1, %s, now())",
            (shop, variant_id, available),
        )


def planted_plan(
    stack: Stack,
    shop: str,
    variant_id: int,
    first_day: date,
    mean: list[float],
    lower: list[float],
    upper: list[float],
    days_of_cover: float | None = None,
    stock: int | None = None,
) -> None:
    """``stock``: the stock the plan was made for (another than the SKU's own now and its
    cover is walked down from that, as before the plan of the new stock)."""
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO sku_plans (shop, variant_id, first_day, mean, lower, upper, method,"
            " members, confidence, days_of_cover, safety_stock, reorder_point,"
            " reorder_quantity, overstock, as_of, stock)"
            " VALUES (%s, %s, %s, %s, %s, %s, 'river', %s, 'medium', %s, 0, 0, 0, false,"
            f" {PLANTED_AS_OF}, %s)"
            " ON CONFLICT (shop, variant_id) DO UPDATE SET first_day = excluded.first_day,"
            " mean = excluded.mean, lower = excluded.lower, upper = excluded.upper,"
            " days_of_cover = excluded.days_of_cover, as_of = excluded.as_of,"
            " stock = excluded.stock",
            (
                shop,
                variant_id,
                first_day,
                mean,
                lower,
                upper,
                Jsonb([{"model": "river", "weight": 1.0}]),
                days_of_cover,
                stock,
            ),
        )


def test_units_sold_per_day_are_what_daily_demand_holds_in_the_shops_days(
    stack: Stack,
) -> None:
    # UTC+14: for most of the UTC day its date is not UTC's.
    shop = new_shop(stack, timezone="Pacific/Kiritimati")
    elsewhere = new_shop(stack)
    tee, mug, other = make_variant("TEE"), make_variant("MUG"), make_variant("ELSEWHERE")
    deliver_ok(stack, product_hook(shop, tee))
    deliver_ok(stack, product_hook(shop, mug))
    deliver_ok(stack, product_hook(elsewhere, other))
    now = datetime.now(UTC)
    orders = [
        (shop, tee, 3, now - timedelta(minutes=1)),
        (shop, mug, 2, now - timedelta(minutes=2)),
        (shop, tee, 5, now - timedelta(days=3)),
        (shop, mug, 1, now - timedelta(days=3, hours=5)),
        (shop, tee, 4, now - timedelta(days=12)),
        (shop, tee, 9, now - timedelta(days=40)),  # outside a 14-day window
        (elsewhere, other, 7, now - timedelta(minutes=1)),
    ]
    for target, variant, quantity, created_at in orders:
        hook, _ = order_hook(target, [(Ids.next(), variant, quantity)], created_at=created_at)
        deliver_ok(stack, hook)
    wait_until(
        lambda: (
            units_sold(stack, shop, tee.variant_id) == 21
            and units_sold(stack, shop, mug.variant_id) == 3
            and units_sold(stack, elsewhere, other.variant_id) == 7
        ),
        what="the orders in daily_demand",
    )
    today = shop_today(stack, shop)

    for variant_id in (None, tee.variant_id, mug.variant_id):
        params = {"days": 14} if variant_id is None else {"days": 14, "variant_id": variant_id}
        answer = charts(stack, shop, "sales", **params)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["today"] == today.isoformat()
        assert body["timezone"] == "Pacific/Kiritimati"
        window = [today - timedelta(days=13 - i) for i in range(14)]
        assert body["actual"]["days"] == [d.isoformat() for d in window]
        stored = stored_units(stack, shop, variant_id)
        assert body["actual"]["units"] == [stored.get(d, 0) for d in window], variant_id
    # The whole shop, over a window that reaches every order: its units and nobody else's.
    whole = charts(stack, shop, "sales", days=60).json()
    assert sum(whole["actual"]["units"]) == 24
    assert whole["actual"]["units"][-1] == stored_units(stack, shop).get(today, 0)
    assert len(charts(stack, shop, "sales", days=7).json()["actual"]["days"]) == 7
    assert len(charts(stack, shop, "sales", days=730).json()["actual"]["days"]) == 730


def test_the_forecast_appears_once_a_plan_exists_and_one_skus_is_its_own_plan(
    stack: Stack,
) -> None:
    shop = new_shop(stack)
    before = charts(stack, shop, "sales").json()
    assert before["forecast"]["days"] == [] and before["forecast"]["skus"] == 0
    assert before["actual"]["units"] == [0] * 90  # the empty state of the chart

    variant = make_variant("PLANNED")
    deliver_ok(stack, product_hook(shop, variant))
    wait_until(lambda: query(stack, "SELECT 1 FROM variants WHERE shop = %s", shop), what="sku")
    seed_history(stack, shop, variant, [3, 4, 5, 6, 5, 4, 3] * 6, shop_today(stack, shop))
    deliver_ok(stack, stock_hook(shop, variant, 60, datetime.now(UTC)))
    order, _ = order_hook(shop, [(Ids.next(), variant, 2)])
    deliver_ok(stack, order)
    wait_until(
        lambda: scalar(stack, "SELECT stock FROM sku_plans WHERE shop = %s", shop) == 60,
        what="a plan made after the order",
    )
    today = shop_today(stack, shop)

    def plan_and_charts() -> tuple[dict, dict] | None:
        """The stored plan and both answers, read while no forecast round replaced it."""
        (first_day, mean, lower, upper, as_of) = query(
            stack,
            "SELECT first_day, mean, lower, upper, as_of FROM sku_plans WHERE shop = %s",
            shop,
        )[0]
        shop_wide = charts(stack, shop, "sales").json()["forecast"]
        own = charts(stack, shop, "sales", variant_id=variant.variant_id).json()["forecast"]
        if scalar(stack, "SELECT as_of FROM sku_plans WHERE shop = %s", shop) != as_of:
            return None
        skip = (today - first_day).days
        plan = {
            "days": [(first_day + timedelta(days=i)).isoformat() for i in range(len(mean))][skip:],
            "mean": [round(x, 2) for x in mean][skip:],
            "lower": [round(x, 2) for x in lower][skip:],
            "upper": [round(x, 2) for x in upper][skip:],
        }
        return plan, {"shop": shop_wide, "own": own}

    plan, answers = wait_until(plan_and_charts, what="a plan that stays put while read")
    for forecast in answers.values():
        assert forecast["days"][0] == today.isoformat() and forecast["skus"] == 1
        assert forecast["interval"] == 0.8
        assert forecast["days"] == plan["days"]
        # Stored as 4-byte reals: rounding to cents may land either side of a half cent.
        for part in ("mean", "lower", "upper"):
            assert forecast[part] == pytest.approx(plan[part], abs=0.0101), part
    assert any(m > 0 for m in plan["mean"])


def test_per_sku_bands_combine_as_independent_over_the_horizon_every_plan_covers(
    stack: Stack,
) -> None:
    shop = new_shop(stack)
    today = shop_today(stack, shop)
    product = Ids.next()
    a = planted_variant(stack, shop, product, "Band", "BAND-A")
    b = planted_variant(stack, shop, product, "Band", "BAND-B")
    c = planted_variant(stack, shop, Ids.next(), "Clipped", "BAND-C")
    gone = planted_variant(stack, shop, Ids.next(), "Gone", "GONE", deleted=True)
    # A, planned yesterday: its first day is past, and its plan reaches 5 days from today.
    planted_plan(
        stack,
        shop,
        a,
        today - timedelta(days=1),
        [1.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0],
        [0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0],
        [2.0, 7.0, 7.0, 7.0, 7.0, 7.0, 7.0],
    )
    # B reaches 7 days: the sum stops where A's plan ends rather than lose A.
    planted_plan(stack, shop, b, today, [3.0] * 7, [0.0] * 7, [7.0] * 7)
    # C's lower bound is clipped at 0 units: a lopsided interval.
    planted_plan(stack, shop, c, today, [0.5] * 7, [0.0] * 7, [2.5] * 7)
    planted_plan(stack, shop, gone, today, [100.0] * 7, [0.0] * 7, [200.0] * 7)

    forecast = charts(stack, shop, "sales").json()["forecast"]
    assert forecast["days"] == [(today + timedelta(days=i)).isoformat() for i in range(6)]
    assert forecast["skus"] == 3  # the deleted variant's plan is no forecast of the shop
    mean = 4.0 + 3.0 + 0.5
    below = math.sqrt(3.0**2 + 3.0**2 + 0.5**2)
    above = math.sqrt(3.0**2 + 4.0**2 + 2.0**2)
    assert forecast["mean"] == [round(mean, 2)] * 6
    assert forecast["lower"] == [round(mean - below, 2)] * 6
    assert forecast["upper"] == [round(mean + above, 2)] * 6
    # Narrower than adding the bounds, which would treat the SKUs as perfectly correlated.
    assert mean - below > 1.0 + 0.0 + 0.0 and mean + above < 7.0 + 7.0 + 2.5

    # One SKU's band is its own interval, untouched.
    own = charts(stack, shop, "sales", variant_id=c).json()["forecast"]
    assert (own["mean"], own["lower"], own["upper"]) == ([0.5] * 7, [0.0] * 7, [2.5] * 7)


def test_stock_per_product_comes_lowest_cover_first_with_its_colour(stack: Stack) -> None:
    shop = new_shop(stack)
    elsewhere = new_shop(stack)

    def product(
        title: str, variants: list[tuple[int | None, float | None]], target: str = shop
    ) -> list[int]:
        """A product whose variants have these (stock, days of cover); None stock: untracked."""
        product_id = Ids.next()
        ids = []
        for n, (stock, cover) in enumerate(variants):
            variant_id = planted_variant(stack, target, product_id, title, f"{title}-{n}")
            if stock is not None:
                planted_level(stack, target, variant_id, stock)
            planted_plan(
                stack,
                target,
                variant_id,
                date.today(),
                [1.0],
                [0.0],
                [2.0],
                days_of_cover=cover,
                stock=stock,
            )
            ids.append(variant_id)
        return ids

    # Size M of the shirt runs out in 3 days, whatever plenty of L there is.
    shirt_m, _ = product("Shirt", [(10, 3.0), (30, 50.0)])
    product("Scarf", [(20, 10.0)])
    product("Hat", [(5, None)])  # never runs out within the forecast
    product("Boots", [(100, 14.0)])  # at the lead time: green
    product("Belt", [(7, 7.0)])  # at 7 days: no longer red
    product("Gift card", [(None, 1.0)])  # untracked: no stock to draw
    product("Not ours", [(1, 0.5)], target=elsewhere)

    answer = charts(stack, shop, "stock")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["low_cover_days"], body["lead_time_days"]) == (7, 14)
    assert body["products_total"] == 5
    got = [
        (p["title"], p["stock"], p["days_of_cover"], p["colour"], p["variants"])
        for p in body["products"]
    ]
    assert got == [
        ("Shirt", 40, 3.0, "red", 2),
        ("Belt", 7, 7.0, "amber", 1),
        ("Scarf", 20, 10.0, "amber", 1),
        ("Boots", 100, 14.0, "green", 1),
        ("Hat", 5, None, "green", 1),
    ]
    shirt = body["products"][0]
    assert shirt["runs_out_first"]["variant_id"] == shirt_m
    assert shirt["days_of_cover_basis"] == "forecast"
    limited = charts(stack, shop, "stock", limit=2).json()
    assert [p["title"] for p in limited["products"]] == ["Shirt", "Belt"]
    assert limited["products_total"] == 5


def test_parameters_out_of_range_are_refused_with_a_reason(stack: Stack) -> None:
    shop = new_shop(stack)
    elsewhere = new_shop(stack)
    foreign = make_variant("FOREIGN")
    deliver_ok(stack, product_hook(elsewhere, foreign))
    wait_until(lambda: query(stack, "SELECT 1 FROM variants WHERE shop = %s", elsewhere))
    for chart, params, reason in (
        ("sales", {"days": 6}, "days must be from 7 to 730"),
        ("sales", {"days": 731}, "days must be from 7 to 730"),
        ("sales", {"days": "ninety"}, "days"),
        ("sales", {"variant_id": "x"}, "variant_id"),
        ("stock", {"limit": 0}, "limit must be from 1 to 200"),
        ("stock", {"limit": 201}, "limit must be from 1 to 200"),
    ):
        answer = charts(stack, shop, chart, **params)
        assert answer.status_code == 400, (chart, params, answer.text)
        assert reason in answer.text, (chart, params, answer.text)
    # Another shop's SKU is no SKU of this one.
    answer = charts(stack, shop, "sales", variant_id=foreign.variant_id)
    assert answer.status_code == 404, answer.text


def test_only_members_read_a_shops_charts(stack: Stack) -> None:
    shop = new_shop(stack)
    strangers = f"s{uuid.uuid4().hex[:12]}.myshopify.com"
    install_shop(stack.database_url, strangers)  # installed, the tests' account no member
    for chart in ("sales", "stock"):
        url = f"{stack.base_url}/api/v1/shops/{shop}/charts/{chart}"
        assert httpx.get(url, timeout=10).status_code == 401
        assert charts(stack, strangers, chart).status_code == 404
        # Nothing about a bad parameter leaks past the membership check either.
        assert charts(stack, strangers, chart, days=1, limit=0).status_code == 404
        assert charts(stack, shop, chart).status_code == 200
