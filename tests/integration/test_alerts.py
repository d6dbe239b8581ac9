"""Instant alerts end to end: signed webhooks in, the real worker fires, the real alert sender
hands mail to a real SMTP server (aiosmtpd on loopback), Kafka and the WebSocket feed carry
the alert. A stack of its own: these tests stop, kill and restart its sender and its SMTP
server."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage

import httpx
import pytest
from kafka import KafkaConsumer

from connectors.kafka.topics import ALERTS
from connectors.settings import Settings
from ops.shopify_payloads import Product, Variant, product_payload, signed_webhook
from ops.stack import Stack
from streams.alert_delivery import AlertSender
from tests.conftest import start_stack, stop_stack
from tests.mailbox import Mailbox
from tests.support import (
    SECRET,
    FeedClient,
    Ids,
    auth,
    deliver_ok,
    make_variant,
    new_shop,
    order_hook,
    product_hook,
    query,
    scalar,
    sku_api,
    stock_hook,
    units_sold,
    wait_until,
)


@pytest.fixture(scope="module")
def mailbox() -> Iterator[Mailbox]:
    box = Mailbox()
    box.start()
    yield box
    box.stop()


@pytest.fixture(scope="module")
def alert_stack(mailbox: Mailbox) -> Iterator[Stack]:
    running = start_stack("alerts", {"SMTP_URL": f"smtp://127.0.0.1:{mailbox.port}?starttls=off"})
    yield running
    stop_stack(running, "alerts")


def alert_shop(
    stack: Stack,
    recipients: list[str],
    *,
    threshold: int = 5,
    mode: str = "immediate",
    rules: tuple[str, ...] = ("low_stock",),
    timezone: str = "UTC",
    digest_hour: int = 8,
    cooldown_hours: int = 24,
) -> str:
    shop = new_shop(stack, timezone=timezone)
    query(
        stack,
        "INSERT INTO shop_settings (shop, low_stock_threshold) VALUES (%s, %s) RETURNING shop",
        shop,
        threshold,
    )
    query(
        stack,
        "INSERT INTO alert_settings (shop, mode, digest_hour, cooldown_hours, rules)"
        " VALUES (%s, %s, %s, %s, %s) RETURNING shop",
        shop,
        mode,
        digest_hour,
        cooldown_hours,
        list(rules),
    )
    for email in recipients:
        query(
            stack,
            "INSERT INTO alert_recipients (shop, email) VALUES (%s, %s) RETURNING shop",
            shop,
            email,
        )
    return shop


def set_stock(stack: Stack, shop: str, variants: list[Variant], available: int) -> None:
    """Levels for ``variants`` at once (concurrently, like a burst from Shopify), then wait
    for their plans to show them."""
    at = datetime.now(UTC)
    hooks = [stock_hook(shop, v, available, at) for v in variants]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda hook: deliver_ok(stack, hook), hooks))
    ids = [v.variant_id for v in variants]
    wait_until(
        lambda: (
            scalar(
                stack,
                "SELECT count(*) FROM sku_plans WHERE shop = %s AND variant_id = ANY(%s)"
                " AND stock = %s",
                shop,
                ids,
                available,
            )
            == len(ids)
        ),
        what=f"plans with stock {available}",
    )


def stocked_products(stack: Stack, shop: str, count: int, available: int) -> list[Variant]:
    variants = [make_variant(f"AL-{i:03d}") for i in range(count)]
    for variant in variants:
        deliver_ok(stack, product_hook(shop, variant))
    set_stock(stack, shop, variants, available)
    return variants


def alert_count(stack: Stack, shop: str) -> int:
    return int(scalar(stack, "SELECT count(*) FROM alerts WHERE shop = %s", shop))


def settle(seconds: float = 3.0) -> None:
    """Room for a duplicate to show up, were the product to make one."""
    time.sleep(seconds)


def alert_messages_on_kafka(stack: Stack, shop: str) -> list[dict]:
    consumer = KafkaConsumer(
        ALERTS,
        bootstrap_servers=stack.bootstrap_servers,
        auto_offset_reset="earliest",
        group_id=None,
        consumer_timeout_ms=3000,
        enable_auto_commit=False,
    )
    try:
        found = [json.loads(m.value) for m in consumer if m.key == shop.encode()]
    finally:
        consumer.close()
    return found


def text_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


async def test_a_crossing_sends_one_email_one_kafka_message_and_one_banner(
    alert_stack: Stack, mailbox: Mailbox
) -> None:
    shop = alert_shop(alert_stack, ["ops@crossing.example"])
    (variant,) = stocked_products(alert_stack, shop, 1, 20)
    # A week of sales, so the forecast has demand to plan a reorder from.
    for days_ago in range(1, 8):
        hook, _ = order_hook(
            shop,
            [(Ids.next(), variant, 2)],
            created_at=datetime.now(UTC) - timedelta(days=days_ago),
        )
        deliver_ok(alert_stack, hook)
    wait_until(lambda: units_sold(alert_stack, shop, variant.variant_id) == 14, what="the sales")
    assert alert_count(alert_stack, shop) == 0

    async with FeedClient(alert_stack, shop) as feed:
        set_stock(alert_stack, shop, [variant], 3)
        mail = mailbox.wait_for("ops@crossing.example")
        banner = await feed.wait_for(lambda m: m.get("type") == "alert")
        settle()
        banners = [m for m in feed.messages if m.get("type") == "alert"]

    assert len(mailbox.to("ops@crossing.example")) == 1
    assert mail["Subject"].startswith("Low stock: Product AL-000 / M: 3 left")
    assert mail["To"] == "ops@crossing.example"
    body = text_of(mail)
    assert "Stock is down to 3 units (low-stock line: 5)" in body
    product_url = f"{alert_stack.base_url}/shops/{shop}/products/{variant.variant_id}"
    assert product_url in body
    plan = sku_api(alert_stack, shop)[variant.variant_id]
    assert plan["reorder_quantity"] > 0 and plan["stockout_date"]
    assert f"Reorder {plan['reorder_quantity']} units by " in body
    assert f"runs out {plan['stockout_date']}" in body
    assert "14-day lead time" in body
    assert mail["List-Unsubscribe"].startswith(f"<{alert_stack.base_url}/alerts/unsubscribe/")
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"

    assert len(banners) == 1
    assert banner["rule"] == "low_stock" and banner["variant_id"] == variant.variant_id
    assert banner["figures"]["stock"] == 3 and banner["product_url"] == product_url
    # A whole number of days as one, like the other day counts (180.0 was published).
    assert type(banner["figures"]["overstock_days"]) is int
    on_kafka = alert_messages_on_kafka(alert_stack, shop)
    assert [m["id"] for m in on_kafka] == [banner["id"]]
    assert alert_count(alert_stack, shop) == 1


def test_a_title_with_line_breaks_gets_its_alert_with_the_title_on_one_line(
    alert_stack: Stack, mailbox: Mailbox
) -> None:
    """Shopify accepts any character in a product title. One that would break a header line
    (and with it the email) is put on one line, not refused: the alert still goes out."""
    shop = alert_shop(alert_stack, ["ops@titles.example"])
    variant = make_variant("LINE-BREAKS")
    title = "Summer\u2028Tee\r\nBcc: someone@else.example"
    product = Product(variant.product_id, title, [variant])
    deliver_ok(
        alert_stack,
        signed_webhook(
            "products/create", shop, product_payload(product, datetime.now(UTC)), SECRET
        ),
    )
    set_stock(alert_stack, shop, [variant], 20)
    set_stock(alert_stack, shop, [variant], 3)
    mail = mailbox.wait_for("ops@titles.example")
    assert mail["Subject"].startswith("Low stock: Summer Tee Bcc: someone@else.example / M: 3 left")
    assert mail["Bcc"] is None and mail["To"] == "ops@titles.example"
    assert (
        scalar(
            alert_stack,
            "SELECT count(*) FROM alert_emails WHERE state = 'failed' AND shop = %s",
            shop,
        )
        == 0
    )


def test_stock_bouncing_around_the_threshold_fires_once(
    alert_stack: Stack, mailbox: Mailbox
) -> None:
    shop = alert_shop(alert_stack, ["ops@bounce.example"])
    (variant,) = stocked_products(alert_stack, shop, 1, 20)
    # 20 crossings within the hour: some bounce inside the hysteresis band (4 ↔ 6), some
    # clear it (4 ↔ 9) and re-arm the trigger, which the cooldown then holds.
    for i in range(20):
        set_stock(alert_stack, shop, [variant], 4)
        set_stock(alert_stack, shop, [variant], 6 if i % 2 else 9)
    mailbox.wait_for("ops@bounce.example")
    settle()
    assert alert_count(alert_stack, shop) == 1
    assert len(mailbox.to("ops@bounce.example")) == 1


def test_after_the_cooldown_only_a_re_armed_trigger_fires_again(
    alert_stack: Stack, mailbox: Mailbox
) -> None:
    shop = alert_shop(alert_stack, ["ops@cooldown.example"])
    (variant,) = stocked_products(alert_stack, shop, 1, 20)
    set_stock(alert_stack, shop, [variant], 3)
    wait_until(lambda: alert_count(alert_stack, shop) == 1, what="the first alert")

    def cooldown_passes() -> None:
        query(
            alert_stack,
            "UPDATE alert_states SET last_fired_at = last_fired_at - interval '25 hours'"
            " WHERE shop = %s RETURNING 1",
            shop,
        )

    # The cooldown is over but the stock never recovered: nothing re-armed it.
    cooldown_passes()
    set_stock(alert_stack, shop, [variant], 2)
    settle()
    assert alert_count(alert_stack, shop) == 1

    # Restocked (re-armed), then low again: a second alert.
    set_stock(alert_stack, shop, [variant], 30)
    set_stock(alert_stack, shop, [variant], 1)
    wait_until(lambda: alert_count(alert_stack, shop) == 2, what="the second alert")
    wait_until(lambda: len(mailbox.to("ops@cooldown.example")) == 2, what="the second email")


def test_no_alert_fires_while_the_shops_history_is_being_imported(
    alert_stack: Stack, mailbox: Mailbox
) -> None:
    shop = alert_shop(alert_stack, ["ops@importing.example"])
    (variant,) = stocked_products(alert_stack, shop, 1, 20)
    query(
        alert_stack,
        "INSERT INTO backfills (shop, since, status) VALUES (%s, current_date, 'running')"
        " RETURNING shop",
        shop,
    )
    set_stock(alert_stack, shop, [variant], 3)
    settle()
    assert alert_count(alert_stack, shop) == 0
    query(alert_stack, "UPDATE backfills SET status = 'done' WHERE shop = %s RETURNING shop", shop)
    set_stock(alert_stack, shop, [variant], 2)
    wait_until(lambda: alert_count(alert_stack, shop) == 1, what="the alert after the import")
    mailbox.wait_for("ops@importing.example")


def test_fifty_crossings_in_a_burst_make_one_email_per_recipient(
    alert_stack: Stack, mailbox: Mailbox
) -> None:
    recipients = ["buyer@burst.example", "owner@burst.example"]
    shop = alert_shop(alert_stack, recipients)
    variants = stocked_products(alert_stack, shop, 50, 20)
    set_stock(alert_stack, shop, variants, 2)
    wait_until(lambda: alert_count(alert_stack, shop) == 50, what="50 alerts")
    for recipient in recipients:
        mail = mailbox.wait_for(recipient)
        assert mail["Subject"] == f"50 products need attention at {shop}"
        body = text_of(mail)
        for variant in variants:
            assert f"({variant.sku})" in body
    settle()
    assert [len(mailbox.to(r)) for r in recipients] == [1, 1]


def test_an_smtp_outage_delays_the_email_and_loses_nothing(
    alert_stack: Stack, mailbox: Mailbox
) -> None:
    shop = alert_shop(alert_stack, ["ops@outage.example"])
    (variant,) = stocked_products(alert_stack, shop, 1, 20)
    mailbox.stop()
    try:
        set_stock(alert_stack, shop, [variant], 3)
        wait_until(
            lambda: scalar(
                alert_stack,
                "SELECT attempts FROM alert_emails WHERE shop = %s AND state = 'sending'",
                shop,
            ),
            what="a failed attempt while the server is down",
        )
        retrying = httpx.get(f"{alert_stack.base_url}/metrics", timeout=10).text
        assert 'stockpulse_alert_emails{state="retrying"}' in retrying
    finally:
        mailbox.start()
    mail = mailbox.wait_for("ops@outage.example", timeout_s=30)
    assert "Product AL-000" in mail["Subject"]
    settle()
    assert len(mailbox.to("ops@outage.example")) == 1


def test_a_refused_recipient_shows_as_failed_and_the_others_still_get_it(
    alert_stack: Stack, mailbox: Mailbox
) -> None:
    shop = alert_shop(alert_stack, ["good@refusal.example", "gone@refusal.example"])
    mailbox.refused.add("gone@refusal.example")
    try:
        (variant,) = stocked_products(alert_stack, shop, 1, 20)
        set_stock(alert_stack, shop, [variant], 3)
        mailbox.wait_for("good@refusal.example")
        state = wait_until(
            lambda: scalar(
                alert_stack,
                "SELECT last_error FROM alert_emails WHERE shop = %s AND recipient = %s"
                " AND state = 'failed'",
                shop,
                "gone@refusal.example",
            ),
            what="the refused delivery to be marked failed",
        )
    finally:
        mailbox.refused.clear()
    assert "550" in state
    assert mailbox.to("gone@refusal.example") == []
    history = httpx.get(
        f"{alert_stack.base_url}/api/v1/shops/{shop}/alerts",
        params={"delivery": "failed"},
        headers=auth(alert_stack),
        timeout=10,
    ).json()
    (item,) = history["items"]
    failed = {d["recipient"]: d for d in item["deliveries"]}
    assert failed["gone@refusal.example"]["state"] == "failed"
    assert "550" in failed["gone@refusal.example"]["error"]
    assert failed["good@refusal.example"]["state"] == "sent"
    metrics = httpx.get(f"{alert_stack.base_url}/metrics", timeout=10).text
    failed_line = next(
        line
        for line in metrics.splitlines()
        if line.startswith('stockpulse_alert_emails{state="failed"}')
    )
    assert float(failed_line.split()[-1]) >= 1


def _kill_sender(stack: Stack) -> None:
    assert stack.sender is not None and stack.sender.process is not None
    os.kill(stack.sender.process.pid, signal.SIGKILL)
    stack.sender.process.wait(10)


def test_a_sender_killed_before_the_smtp_conversation_sends_exactly_once_after_restart(
    alert_stack: Stack, mailbox: Mailbox
) -> None:
    shop = alert_shop(alert_stack, ["ops@killed-early.example"])
    (variant,) = stocked_products(alert_stack, shop, 1, 20)
    assert alert_stack.sender is not None
    mailbox.on_mail = lambda: _kill_sender(alert_stack)
    try:
        set_stock(alert_stack, shop, [variant], 3)
        wait_until(lambda: not alert_stack.sender.running, what="the sender to be killed")
    finally:
        mailbox.on_mail = None
    assert mailbox.to("ops@killed-early.example") == []
    alert_stack.sender.start()
    mailbox.wait_for("ops@killed-early.example", timeout_s=30)
    settle()
    assert len(mailbox.to("ops@killed-early.example")) == 1


def test_a_sender_killed_after_the_server_took_the_mail_resends_the_same_message_id(
    alert_stack: Stack, mailbox: Mailbox
) -> None:
    shop = alert_shop(alert_stack, ["ops@killed-late.example"])
    (variant,) = stocked_products(alert_stack, shop, 1, 20)
    assert alert_stack.sender is not None
    mailbox.on_data = lambda: _kill_sender(alert_stack)
    try:
        set_stock(alert_stack, shop, [variant], 3)
        mailbox.wait_for("ops@killed-late.example")
        wait_until(lambda: not alert_stack.sender.running, what="the sender to be killed")
    finally:
        mailbox.on_data = None
    alert_stack.sender.start()
    wait_until(
        lambda: (
            scalar(alert_stack, "SELECT state FROM alert_emails WHERE shop = %s", shop) == "sent"
        ),
        timeout_s=30,
        what="the email to be marked sent after the restart",
    )
    copies = mailbox.to("ops@killed-late.example")
    assert len(copies) == 2
    assert len({m["Message-ID"] for m in copies}) == 1


def _sender_on_clock(stack: Stack, mailbox: Mailbox, clock: dict[str, datetime]) -> AlertSender:
    """A sender of the stack's alerts to ``mailbox`` that reads the time from ``clock``."""
    return AlertSender(
        Settings(
            database_url=stack.database_url,
            smtp_url=f"smtp://127.0.0.1:{mailbox.port}?starttls=off",
            stockpulse_base_url=stack.base_url,
        ),
        clock=lambda: clock["now"],
    )


async def test_digest_mode_sends_the_days_alerts_at_the_local_hour_across_a_dst_change(
    alert_stack: Stack, mailbox: Mailbox
) -> None:
    recipient = "ops@digest.example"
    shop = alert_shop(
        alert_stack, [recipient], mode="digest", timezone="America/New_York", digest_hour=8
    )
    variants = stocked_products(alert_stack, shop, 3, 20)
    clock = {"now": datetime(2026, 10, 31, 11, 59, tzinfo=UTC)}  # 07:59 EDT
    sender = _sender_on_clock(alert_stack, mailbox, clock)
    assert alert_stack.sender is not None
    # The stack's own sender reads the real clock; this test's sender is the only one.
    alert_stack.sender.stop()
    await sender.open()
    try:

        def digests() -> list[tuple]:
            return query(
                alert_stack,
                "SELECT digest_day, state FROM alert_emails WHERE shop = %s ORDER BY id",
                shop,
            )

        set_stock(alert_stack, shop, variants[:2], 3)
        wait_until(lambda: alert_count(alert_stack, shop) == 2, what="two alerts")
        await sender.run_once()
        assert digests() == [] and mailbox.to(recipient) == []

        clock["now"] = datetime(2026, 10, 31, 12, 0, tzinfo=UTC)  # 08:00 EDT
        await sender.run_once()
        assert digests() == [(date(2026, 10, 31), "sent")]
        (first,) = mailbox.to(recipient)
        assert first["Subject"] == f"{shop} daily stock digest, Sat 31 Oct: 2 product(s) to look at"

        # Clocks went back an hour at 02:00 on 1 November: 08:00 is now 13:00 UTC.
        set_stock(alert_stack, shop, variants[2:], 3)
        wait_until(lambda: alert_count(alert_stack, shop) == 3, what="a third alert")
        clock["now"] = datetime(2026, 11, 1, 12, 30, tzinfo=UTC)  # 07:30 EST (08:30 EDT)
        await sender.run_once()
        assert len(digests()) == 1
        clock["now"] = datetime(2026, 11, 1, 13, 0, tzinfo=UTC)  # 08:00 EST
        await sender.run_once()
        clock["now"] = datetime(2026, 11, 1, 22, 0, tzinfo=UTC)  # later that day: no second
        await sender.run_once()
        assert digests() == [(date(2026, 10, 31), "sent"), (date(2026, 11, 1), "sent")]
        second = mailbox.to(recipient)[1]
        assert "1 product(s)" in second["Subject"] and "Sun 01 Nov" in second["Subject"]
        assert f"({variants[2].sku})" in text_of(second)
        assert f"({variants[0].sku})" not in text_of(second)
    finally:
        await sender.close()
        alert_stack.sender.start()


async def test_an_alert_after_the_digest_hour_waits_for_the_next_days_digest(
    alert_stack: Stack, mailbox: Mailbox
) -> None:
    """A shop with nothing to say at 08:00 sent its "daily digest" with its first alert after
    it, at 20:05 (an outside test): the digest hour is when it goes out, whatever came first."""
    recipient = "ops@late-digest.example"
    shop = alert_shop(alert_stack, [recipient], mode="digest", timezone="UTC", digest_hour=8)
    (variant,) = stocked_products(alert_stack, shop, 1, 20)
    clock = {"now": datetime(2026, 12, 7, 20, 5, tzinfo=UTC)}
    sender = _sender_on_clock(alert_stack, mailbox, clock)
    assert alert_stack.sender is not None
    alert_stack.sender.stop()
    await sender.open()
    try:
        set_stock(alert_stack, shop, [variant], 3)
        wait_until(lambda: alert_count(alert_stack, shop) == 1, what="an alert")
        await sender.run_once()
        emails = "SELECT digest_day, state FROM alert_emails WHERE shop = %s ORDER BY id"
        assert query(alert_stack, emails, shop) == [] and mailbox.to(recipient) == []
        clock["now"] += timedelta(hours=11, minutes=54)  # 07:59 the next day
        await sender.run_once()
        assert query(alert_stack, emails, shop) == []
        clock["now"] += timedelta(minutes=1)
        await sender.run_once()
        assert query(alert_stack, emails, shop) == [(date(2026, 12, 8), "sent")]
        (digest,) = mailbox.to(recipient)
        assert "Tue 08 Dec: 1 product(s)" in digest["Subject"]
    finally:
        await sender.close()
        alert_stack.sender.start()


def test_alerts_waiting_for_a_digest_go_at_once_when_the_shop_switches_to_immediate(
    alert_stack: Stack, mailbox: Mailbox
) -> None:
    """Switched back to immediate, alerts held for the digest waited for its hour, up to a
    day (an outside test)."""
    recipient = "ops@back-to-immediate.example"
    # Today's digest went at the top of this hour: an alert now waits for tomorrow's.
    hour = datetime.now(UTC).hour
    shop = alert_shop(alert_stack, [recipient], mode="digest", timezone="UTC", digest_hour=hour)
    (variant,) = stocked_products(alert_stack, shop, 1, 20)
    set_stock(alert_stack, shop, [variant], 3)
    wait_until(lambda: alert_count(alert_stack, shop) == 1, what="an alert")
    settle()
    assert mailbox.to(recipient) == []
    answer = httpx.put(
        f"{alert_stack.base_url}/api/v1/shops/{shop}/alert-settings",
        json={"mode": "immediate"},
        headers=auth(alert_stack),
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    mail = mailbox.wait_for(recipient, timeout_s=30)
    assert "digest" not in str(mail["Subject"])
