"""The alert history where a merchant reads it: the Alerts page and its JSON API, the alerts CSV,
a product's page, the dashboard's banners (live in a real Chromium) and /metrics; filters,
paging, errors, and nothing of it for anybody else.

Alerts are written straight into PostgreSQL as the worker and the sender leave them (marked
published, and retries due tomorrow), so neither touches them while the tests read."""

from __future__ import annotations

import csv
import io
import re
import uuid
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import psycopg
from kafka import KafkaProducer
from playwright.sync_api import Browser, expect
from psycopg.types.json import Jsonb

from connectors.db.shops import install_shop
from connectors.kafka.topics import ALERTS, AlertMessage, shop_key
from models.alerts import SEVERITY, Rule, headline
from ops.shopify_payloads import Product, Variant, product_payload, signed_webhook
from ops.stack import Stack
from tests.conftest import ARTIFACTS
from tests.support import (
    SECRET,
    auth,
    browser_login,
    deliver_ok,
    make_variant,
    new_shop,
    query,
    signed_in_client,
    wait_until,
)

SCREENS = ARTIFACTS / "screens"
BERLIN = ZoneInfo("Europe/Berlin")
HOSTILE_TITLE = '=HYPERLINK("http://evil.example", "click")'
REFUSED = "550 5.1.1 <buyer@shop.example>: Recipient address rejected"


def add_product(stack: Stack, shop: str, variant: Variant, title: str) -> None:
    """A product of one variant, through the webhook (so the pages know its names)."""
    product = Product(variant.product_id, title, [variant])
    hook = signed_webhook(
        "products/create", shop, product_payload(product, datetime.now(UTC)), SECRET
    )
    deliver_ok(stack, hook)


def figures(sku: str, title: str, stock: int = 3) -> dict[str, Any]:
    return {
        "sku": sku,
        "title": title,
        "stock": stock,
        "days_of_cover": 2.5,
        "stockout_date": "2026-12-01",
        "reorder_point": 9.0,
        "reorder_quantity": 40,
        "reorder_by": "2026-11-17",
        "lead_time_days": 14,
        "low_stock_threshold": 5,
        "stockout_within_days": 7,
        "overstock_days": 180,
        "dead_stock_days": None,
        "shop_today": "2026-11-23",
    }


@dataclass
class Seeded:
    id: int
    variant_id: int
    rule: str
    fired_at: datetime
    figures: dict[str, Any]
    deliveries: list[tuple[str, str, int, str | None]] = field(default_factory=list)


def seed_alert(
    stack: Stack,
    shop: str,
    variant_id: int,
    rule: Rule,
    fired_at: datetime,
    figures: dict[str, Any],
    deliveries: Sequence[tuple[str, str, int, str | None]] = (),
) -> Seeded:
    """An alert with a delivery per (recipient, email state, attempts, last error)."""
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        row = conn.execute(
            "INSERT INTO alerts (shop, variant_id, rule, severity, fired_at, digest_only,"
            " figures, published_at) VALUES (%s, %s, %s, %s, %s, false, %s, now()) RETURNING id",
            (shop, variant_id, rule.value, SEVERITY[rule], fired_at, Jsonb(figures)),
        ).fetchone()
        assert row is not None
        for recipient, state, attempts, error in deliveries:
            email = conn.execute(
                "INSERT INTO alert_emails (shop, recipient, kind, message_id, state, attempts,"
                " last_error, next_attempt_at, sent_at) VALUES (%s, %s, 'immediate', %s, %s,"
                " %s, %s, now() + interval '1 day',"
                " CASE WHEN %s = 'sent' THEN now() END) RETURNING id",
                (shop, recipient, f"<t{uuid.uuid4().hex}@test>", state, attempts, error, state),
            ).fetchone()
            assert email is not None
            conn.execute(
                "INSERT INTO alert_deliveries (alert_id, recipient, shop, via_digest, email_id)"
                " VALUES (%s, %s, %s, false, %s)",
                (row[0], recipient, shop, email[0]),
            )
    return Seeded(row[0], variant_id, rule.value, fired_at, figures, list(deliveries))


@dataclass
class AlertShop:
    shop: str
    mug: Variant
    hostile: Variant
    low: Seeded  # 2 hours ago: one recipient sent, one refused
    soon: Seeded  # 3 days ago: retrying
    old: Seeded  # 40 days ago, of the product with a formula for a title


_seeded: dict[str, AlertShop] = {}


def alert_shop(stack: Stack) -> AlertShop:
    """A shop in Berlin's time zone with three alerts of two products (made once)."""
    if stack.database_url in _seeded:
        return _seeded[stack.database_url]
    shop = new_shop(stack, timezone="Europe/Berlin")
    mug, hostile = make_variant("MUG-1"), make_variant("EVIL-1")
    add_product(stack, shop, mug, "Blue Mug")
    add_product(stack, shop, hostile, HOSTILE_TITLE)
    wait_until(
        lambda: len(query(stack, "SELECT 1 FROM variants WHERE shop = %s", shop)) == 2,
        what="both products",
    )
    now = datetime.now(UTC)
    mug_title, hostile_title = "Blue Mug / M", f"{HOSTILE_TITLE} / M"
    seeded = AlertShop(
        shop=shop,
        mug=mug,
        hostile=hostile,
        low=seed_alert(
            stack,
            shop,
            mug.variant_id,
            Rule.LOW_STOCK,
            now - timedelta(hours=2),
            figures("MUG-1", mug_title),
            [("buyer@shop.example", "failed", 1, REFUSED), ("ops@shop.example", "sent", 1, None)],
        ),
        soon=seed_alert(
            stack,
            shop,
            mug.variant_id,
            Rule.STOCKOUT_SOON,
            now - timedelta(days=3),
            figures("MUG-1", mug_title),
            [("ops@shop.example", "sending", 2, "421 4.7.0 Try again later")],
        ),
        old=seed_alert(
            stack,
            shop,
            hostile.variant_id,
            Rule.REORDER_POINT,
            now - timedelta(days=40),
            figures("EVIL-1", hostile_title, stock=8),
            [("ops@shop.example", "sent", 1, None)],
        ),
    )
    _seeded[stack.database_url] = seeded
    return seeded


def shown_ids(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'<tr data-alert-id="(\d+)"', html)]


def api(stack: Stack, shop: str, **params: Any) -> httpx.Response:
    return httpx.get(
        f"{stack.base_url}/api/v1/shops/{shop}/alerts",
        params=params,
        headers=auth(stack),
        timeout=10,
    )


def test_the_alerts_page_lists_alerts_with_their_deliveries_and_filters(stack: Stack) -> None:
    seeded = alert_shop(stack)
    shop, low, soon, old = seeded.shop, seeded.low, seeded.soon, seeded.old
    with closing(signed_in_client(stack)) as client:
        page = client.get(f"/shops/{shop}/alerts")
        assert page.status_code == 200, page.text
        html = page.text
        assert shown_ids(html) == [low.id, soon.id, old.id]  # newest first
        assert headline(Rule.LOW_STOCK, low.figures) in html
        assert f'href="/shops/{shop}/products/{seeded.mug.variant_id}"' in html
        assert "Low stock" in html and "severity-warning" in html and "severity-critical" in html
        # Fired times in the shop's zone; the refused recipient with the server's words.
        assert low.fired_at.astimezone(BERLIN).strftime("%Y-%m-%d %H:%M %Z") in html
        assert f"buyer@shop.example: failed: {REFUSED}" in html.replace("&lt;", "<").replace(
            "&gt;", ">"
        )
        assert "ops@shop.example: retrying (2 attempts): 421 4.7.0 Try again later" in html
        # The formula is text on a page.
        assert "=HYPERLINK(&#34;http://evil.example&#34;" in html
        assert 'href="/shops/' + shop + '/alerts">Alerts</a>' in html  # the shop's nav

        def ids(**params: str) -> list[int]:
            answer = client.get(f"/shops/{shop}/alerts", params=params)
            assert answer.status_code == 200, (params, answer.text)
            return shown_ids(answer.text)

        assert ids(rule="stockout_soon") == [soon.id]
        assert ids(delivery="failed") == [low.id]
        assert ids(delivery="waiting") == [soon.id]
        assert ids(delivery="sent") == [low.id, old.id]
        assert ids(q="evil") == [old.id]  # by SKU
        assert ids(q="blue mug") == [low.id, soon.id]  # by product title
        assert ids(range="24h") == [low.id]
        assert ids(range="7d") == [low.id, soon.id]
        assert ids(range="30d", rule="reorder_point") == []
        assert ids(variant_id=str(seeded.hostile.variant_id)) == [old.id]
        # Blank form fields are no filter.
        assert ids(rule="", delivery="", q="", range="all") == [low.id, soon.id, old.id]
        nothing = client.get(f"/shops/{shop}/alerts", params={"q": "no such thing"}).text
        assert "No alert matches these filters" in nothing

        bad = client.get(f"/shops/{shop}/alerts", params={"rule": "bogus"})
        assert bad.status_code == 400
        assert "rule: Input should be" in bad.text and "Show every alert" in bad.text

        empty = new_shop(stack)
        blank = client.get(f"/shops/{empty}/alerts")
        assert blank.status_code == 200
        assert "No alerts yet" in blank.text
        assert (
            f'href="/shops/{empty}/settings"' in blank.text and "low-stock threshold" in blank.text
        )


def test_the_alerts_page_pages_through_fifty_at_a_time(stack: Stack) -> None:
    shop = new_shop(stack)
    variant = make_variant("PAGED-1")
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO alerts (shop, variant_id, rule, severity, fired_at, digest_only,"
            " figures, published_at) SELECT %s, %s, 'low_stock', 'warning',"
            " now() - make_interval(mins => i), false, %s, now() FROM generate_series(1, 55) i",
            (shop, variant.variant_id, Jsonb(figures("PAGED-1", "Paged"))),
        )
    with closing(signed_in_client(stack)) as client:
        first = client.get(f"/shops/{shop}/alerts").text
        assert len(shown_ids(first)) == 50 and "Page 1 of 2" in first and "1–50 of" in first
        assert 'rel="next"' in first and "no recipients" in first
        second = client.get(f"/shops/{shop}/alerts", params={"page": 2}).text
        assert len(shown_ids(second)) == 5 and "Page 2 of 2" in second
        assert not set(shown_ids(first)) & set(shown_ids(second))
        past = client.get(f"/shops/{shop}/alerts", params={"page": 9}).text
        assert "past the last alert" in past
    body = api(stack, shop, limit=200).json()
    assert body["total"] == 55 and len(body["items"]) == 55
    assert body["items"][0]["deliveries"] == []


def test_the_alerts_api_filters_pages_and_refuses_bad_filters(stack: Stack) -> None:
    seeded = alert_shop(stack)
    shop, low, soon, old = seeded.shop, seeded.low, seeded.soon, seeded.old
    answer = api(stack, shop)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["total"], body["limit"], body["offset"]) == (3, 50, 0)
    assert [i["id"] for i in body["items"]] == [low.id, soon.id, old.id]
    item = body["items"][0]
    assert item["variant_id"] == seeded.mug.variant_id and item["sku"] == "MUG-1"
    assert item["title"] == "Blue Mug / M"
    assert (item["rule"], item["severity"], item["digest_only"]) == ("low_stock", "warning", False)
    assert item["headline"] == headline(Rule.LOW_STOCK, low.figures)
    assert datetime.fromisoformat(item["fired_at"]) == low.fired_at
    assert datetime.fromisoformat(item["fired_at"]).utcoffset() == timedelta(0)
    assert item["figures"]["reorder_quantity"] == 40
    assert [(d["recipient"], d["state"], d["error"]) for d in item["deliveries"]] == [
        ("buyer@shop.example", "failed", REFUSED),
        ("ops@shop.example", "sent", None),
    ]
    retrying = body["items"][1]["deliveries"][0]
    assert (retrying["state"], retrying["attempts"]) == ("retrying", 2)

    def ids(**params: Any) -> list[int]:
        found = api(stack, shop, **params)
        assert found.status_code == 200, (params, found.text)
        return [i["id"] for i in found.json()["items"]]

    paged = api(stack, shop, limit=1, offset=1).json()
    assert [i["id"] for i in paged["items"]] == [soon.id] and paged["total"] == 3
    assert ids(offset=3) == []
    assert ids(variant_id=seeded.hostile.variant_id) == [old.id]
    assert ids(rule="low_stock") == [low.id]
    assert ids(delivery="failed") == [low.id] and ids(delivery="waiting") == [soon.id]
    assert ids(q="MUG") == [low.id, soon.id]
    now = datetime.now(UTC)
    assert ids(since=(now - timedelta(hours=36)).isoformat()) == [low.id]
    assert ids(until=(now - timedelta(days=1)).isoformat()) == [soon.id, old.id]
    window = {"since": (now - timedelta(days=5)).isoformat(), "until": now.isoformat()}
    assert ids(**window) == [low.id, soon.id]
    assert ids(since="2026-01-01T00:00:00+05:30", until="2026-01-01T00:00:01+05:30") == []

    refusals: list[tuple[dict[str, Any], str]] = [
        ({"rule": "nope"}, "rule"),
        ({"delivery": "lost"}, "delivery"),
        ({"limit": 0}, "limit"),
        ({"limit": 201}, "limit"),
        ({"offset": -1}, "offset"),
        ({"variant_id": "abc"}, "variant_id"),
        ({"since": "yesterday"}, "since: a time with its zone is needed"),
        ({"since": "2026-01-01T00:00:00"}, "timezone"),
        ({"since": "2026-01-01"}, "2026-01-01T00:00:00Z"),  # a day is not a time: say so
        ({"since": now.isoformat(), "until": (now - timedelta(days=1)).isoformat()}, "before"),
        ({"q": "a\x00b"}, "q"),
        ({"colour": "red"}, "unknown parameter"),
    ]
    for params, says in refusals:
        refused = api(stack, shop, **params)
        assert refused.status_code == 400, (params, refused.status_code, refused.text)
        assert says in refused.json()["detail"], (params, refused.json())

    assert httpx.get(f"{stack.base_url}/api/v1/shops/{shop}/alerts", timeout=10).status_code == 401
    schema = httpx.get(f"{stack.base_url}/schema/openapi.json", timeout=10).json()
    operation = schema["paths"]["/api/v1/shops/{shop_domain}/alerts"]["get"]
    assert {"rule", "delivery", "q", "since", "until", "limit", "offset"} <= {
        p["name"] for p in operation["parameters"]
    }
    assert "AlertsPage" in str(operation["responses"]["200"])


def test_another_shops_alerts_do_not_exist_for_a_member_of_one(stack: Stack) -> None:
    strangers = f"s{uuid.uuid4().hex[:12]}.myshopify.com"
    install_shop(stack.database_url, strangers)
    variant = make_variant("THEIRS")
    seed_alert(
        stack, strangers, variant.variant_id, Rule.LOW_STOCK, datetime.now(UTC), figures("T", "T")
    )
    base = f"{stack.base_url}/api/v1/shops/{strangers}"
    for url in (f"{base}/alerts", f"{base}/alerts?rule=bogus", f"{base}/reports/alerts.csv"):
        assert httpx.get(url, headers=auth(stack), timeout=10).status_code == 404, url
    with closing(signed_in_client(stack)) as client:
        assert client.get(f"/shops/{strangers}/alerts").status_code == 404
        assert client.get(f"/shops/{strangers}/alerts?rule=bogus").status_code == 404
        assert client.get(f"/shops/{strangers}").status_code == 404


def test_the_alerts_csv_quotes_neutralises_formulas_and_uses_the_shops_time(
    stack: Stack,
) -> None:
    seeded = alert_shop(stack)
    shop = seeded.shop
    answer = httpx.get(
        f"{stack.base_url}/api/v1/shops/{shop}/reports/alerts.csv", headers=auth(stack), timeout=10
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/csv")
    today = datetime.now(BERLIN).date().isoformat()
    assert f'filename="{shop}-alerts-{today}.csv"' in answer.headers["content-disposition"]
    reader = csv.DictReader(io.StringIO(answer.text))
    assert reader.fieldnames == [
        "fired_at",
        "product",
        "sku",
        "rule",
        "severity",
        "headline",
        "stock",
        "days_of_cover",
        "stockout_date",
        "reorder_quantity",
        "reorder_by",
        "deliveries",
    ]
    rows = list(reader)
    assert len(rows) == 3
    low, soon, old = rows
    fired = datetime.fromisoformat(low["fired_at"])
    assert fired == seeded.low.fired_at
    assert fired.utcoffset() == seeded.low.fired_at.astimezone(BERLIN).utcoffset()
    assert (low["product"], low["sku"], low["rule"], low["severity"]) == (
        "Blue Mug / M",
        "MUG-1",
        "low_stock",
        "warning",
    )
    assert low["headline"] == headline(Rule.LOW_STOCK, seeded.low.figures)
    assert (low["stock"], low["days_of_cover"], low["stockout_date"]) == ("3", "2.5", "2026-12-01")
    assert (low["reorder_quantity"], low["reorder_by"]) == ("40", "2026-11-17")
    assert low["deliveries"] == f"buyer@shop.example: failed ({REFUSED}); ops@shop.example: sent"
    assert soon["deliveries"] == (
        "ops@shop.example: retrying (2 attempts: 421 4.7.0 Try again later)"
    )
    # Quoted (a comma and quotes inside) and never run as a formula by a spreadsheet.
    assert old["product"] == f"'{HOSTILE_TITLE} / M"
    assert '"\'=HYPERLINK(""http://evil.example"", ""click"") / M"' in answer.text
    assert (
        httpx.get(
            f"{stack.base_url}/api/v1/shops/{shop}/reports/alerts.csv", timeout=10
        ).status_code
        == 401
    )


def test_a_products_page_and_json_show_its_alert_history(stack: Stack) -> None:
    seeded = alert_shop(stack)
    shop, mug = seeded.shop, seeded.mug
    story = httpx.get(
        f"{stack.base_url}/api/v1/shops/{shop}/products/{mug.variant_id}",
        headers=auth(stack),
        timeout=10,
    )
    assert story.status_code == 200, story.text
    alerts = story.json()["alerts"]
    assert [a["id"] for a in alerts] == [seeded.low.id, seeded.soon.id]
    assert alerts[0]["headline"] == headline(Rule.LOW_STOCK, seeded.low.figures)
    assert alerts[0]["deliveries"][0]["state"] == "failed"
    with closing(signed_in_client(stack)) as client:
        page = client.get(f"/shops/{shop}/products/{mug.variant_id}")
        assert page.status_code == 200, page.text
        assert shown_ids(page.text) == [seeded.low.id, seeded.soon.id]
        assert headline(Rule.STOCKOUT_SOON, seeded.soon.figures) in page.text
        assert "Stockout soon" in page.text and "buyer@shop.example: failed" in page.text
        other = client.get(f"/shops/{shop}/products/{seeded.hostile.variant_id}").text
        assert shown_ids(other) == [seeded.old.id]


def test_metrics_count_alert_emails_by_state(stack: Stack) -> None:
    alert_shop(stack)  # has a failed email
    text = httpx.get(f"{stack.base_url}/metrics", timeout=10).text
    values = {
        state: float(value)
        for state, value in re.findall(
            r'^stockpulse_alert_emails\{state="(\w+)"\} (\S+)$', text, re.M
        )
    }
    assert set(values) == {"pending", "retrying", "failed", "sent"}, text
    assert values["failed"] >= 1 and values["sent"] >= 2 and values["retrying"] >= 1
    assert re.search(r"^stockpulse_alert_email_oldest_unsent_seconds \S+$", text, re.M)
    assert re.search(r"^stockpulse_alert_oldest_ungrouped_seconds \S+$", text, re.M)


def test_the_dashboard_shows_the_days_alerts_as_banners(stack: Stack) -> None:
    seeded = alert_shop(stack)
    with closing(signed_in_client(stack)) as client:
        html = client.get(f"/shops/{seeded.shop}").text
    banners = re.findall(r'<li class="alert-banner" data-alert-id="(\d+)"', html)
    assert banners == [str(seeded.low.id)]  # the others fired days ago
    assert headline(Rule.LOW_STOCK, seeded.low.figures) in html
    assert f'href="/shops/{seeded.shop}/alerts">All alerts</a>' in html


def test_an_alert_of_a_product_deleted_since_stays_without_a_link_to_its_gone_page(
    stack: Stack,
) -> None:
    """The Alerts page and the banners linked a deleted variant's alert to its page, a 404
    (an outside test)."""
    shop = new_shop(stack)
    gone = make_variant("GONE-1")
    add_product(stack, shop, gone, "Old Lamp")
    wait_until(lambda: query(stack, "SELECT 1 FROM variants WHERE shop = %s", shop), what="sku")
    alert = seed_alert(
        stack,
        shop,
        gone.variant_id,
        Rule.LOW_STOCK,
        datetime.now(UTC) - timedelta(hours=1),
        figures("GONE-1", "Old Lamp / M"),
    )
    deliver_ok(stack, signed_webhook("products/delete", shop, {"id": gone.product_id}, SECRET))
    page_link = f'href="/shops/{shop}/products/{gone.variant_id}"'
    wait_until(
        lambda: query(stack, "SELECT 1 FROM variants WHERE shop = %s AND deleted", shop),
        what="the delete",
    )
    with closing(signed_in_client(stack)) as client:
        assert client.get(f"/shops/{shop}/products/{gone.variant_id}").status_code == 404
        listed = client.get(f"/shops/{shop}/alerts").text
        dashboard = client.get(f"/shops/{shop}").text
    assert shown_ids(listed) == [alert.id] and "(deleted)" in listed, listed
    assert page_link not in listed
    assert f'data-alert-id="{alert.id}"' in dashboard and page_link not in dashboard
    (item,) = api(stack, shop).json()["items"]
    assert item["product_deleted"] is True and item["title"] == "Old Lamp / M"


def publish(stack: Stack, alert: Seeded, shop: str) -> None:
    """The alert on stockpulse.alerts, as the worker publishes it."""
    message = AlertMessage(
        id=alert.id,
        shop=shop,
        variant_id=alert.variant_id,
        sku=alert.figures["sku"],
        title=alert.figures["title"],
        rule=alert.rule,  # type: ignore[arg-type]
        severity=SEVERITY[Rule(alert.rule)],  # type: ignore[arg-type]
        headline=headline(Rule(alert.rule), alert.figures),
        digest_only=False,
        fired_at=alert.fired_at.isoformat(),
        product_url=f"{stack.base_url}/shops/{shop}/products/{alert.variant_id}",
        figures=alert.figures,
    )
    producer = KafkaProducer(bootstrap_servers=stack.bootstrap_servers)
    try:
        producer.send(ALERTS, key=shop_key(shop), value=message.model_dump_json().encode())
        producer.flush(10)
    finally:
        producer.close()


def test_a_live_alert_becomes_a_banner_that_stays_dismissed(stack: Stack, browser: Browser) -> None:
    shop = new_shop(stack, timezone="Europe/Berlin")
    mug = make_variant("LIVE-MUG")
    add_product(stack, shop, mug, "Live Mug")
    wait_until(lambda: query(stack, "SELECT 1 FROM variants WHERE shop = %s", shop), what="sku")
    earlier = seed_alert(
        stack,
        shop,
        mug.variant_id,
        Rule.LOW_STOCK,
        datetime.now(UTC) - timedelta(hours=1),
        figures("LIVE-MUG", "Live Mug / M"),
    )
    page = browser.new_page(viewport={"width": 390, "height": 844})
    browser_login(page, stack, f"/shops/{shop}")
    expect(page.locator("#live")).to_have_attribute("data-state", "open")
    banners = page.locator("#alert-banners .alert-banner")
    expect(banners).to_have_count(1)

    live = seed_alert(
        stack,
        shop,
        mug.variant_id,
        Rule.STOCKOUT_BEFORE_REORDER,
        datetime.now(UTC),
        figures("LIVE-MUG", "Live Mug / M", stock=2),
    )
    publish(stack, live, shop)
    newest = banners.first
    expect(newest).to_have_attribute("data-alert-id", str(live.id), timeout=10_000)
    expect(newest).to_have_attribute("data-severity", "critical")
    expect(newest).to_contain_text(headline(Rule.STOCKOUT_BEFORE_REORDER, live.figures))
    expect(newest).to_contain_text("Stockout before a reorder arrives · just now")
    expect(newest.locator("a")).to_have_attribute(
        "href", f"/shops/{shop}/products/{mug.variant_id}"
    )
    publish(stack, live, shop)  # published at least once: a repeat adds nothing
    page.wait_for_timeout(500)
    expect(banners).to_have_count(2)
    box = newest.bounding_box()
    assert box is not None and box["x"] + box["width"] <= 390, box  # fits a phone
    SCREENS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENS / "dashboard-alerts-phone.png"))

    newest.locator("button.dismiss").click()
    expect(banners).to_have_count(1)
    page.reload()
    # The server shows the day's two alerts; the dismissed one stays hidden.
    expect(page.locator("#alert-banners")).to_be_visible()
    expect(banners).to_have_count(1)
    expect(banners.first).to_have_attribute("data-alert-id", str(earlier.id))
    banners.first.locator("button.dismiss").click()
    expect(page.locator("#alert-banners")).to_be_hidden()

    page.goto(f"{stack.base_url}/shops/{shop}/alerts")
    expect(page.locator("tr[data-alert-id]")).to_have_count(2)
    table = page.locator("table.alerts-table").bounding_box()
    assert table is not None and table["width"] <= 390, table  # cards, no sideways scroll
    page.screenshot(path=str(SCREENS / "alerts-phone.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 800})
    page.select_option("select[name=rule]", "low_stock")
    page.click("form[role=search] button[type=submit]")
    expect(page.locator("tr[data-alert-id]")).to_have_count(1)
    assert "rule=low_stock" in page.url
    page.screenshot(path=str(SCREENS / "alerts-desktop.png"), full_page=True)
    page.close()
