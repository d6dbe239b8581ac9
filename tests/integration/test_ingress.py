"""The ingress refuses bad input clearly, changes nothing for it, and keeps serving."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import websockets.sync.client as ws
from kafka import KafkaConsumer
from websockets.exceptions import InvalidStatus

from connectors.kafka.topics import RAW_WEBHOOKS
from connectors.shopify.webhooks import sign
from ops.shopify_payloads import signed_webhook
from ops.stack import Stack
from tests.support import (
    SECRET,
    Ids,
    deliver,
    deliver_ok,
    make_variant,
    new_shop,
    order_hook,
    product_hook,
    scalar,
    units_sold,
    wait_until,
)


def _raw_envelopes(stack: Stack) -> list[dict]:
    """Every envelope the ingress produced so far, read back from the broker."""
    consumer = KafkaConsumer(
        RAW_WEBHOOKS,
        bootstrap_servers=stack.bootstrap_servers,
        auto_offset_reset="earliest",
        group_id=None,
        consumer_timeout_ms=3000,
        enable_auto_commit=False,
    )
    try:
        return [json.loads(m.value) for m in consumer]
    finally:
        consumer.close()


def _raw_topic_event_ids(stack: Stack) -> set[str]:
    return {envelope["event_id"] for envelope in _raw_envelopes(stack)}


def _resigned(hook, body: bytes, secret: str = SECRET) -> dict[str, str]:
    return {**hook.headers, "X-Shopify-Hmac-Sha256": sign(body, secret.encode())}


def test_bad_input_is_refused_with_a_clear_error_and_nothing_is_produced(stack: Stack) -> None:
    shop = new_shop(stack)
    variant = make_variant()
    refused: list[str] = []

    def expect(status: int, hook, **kwargs) -> None:
        response = deliver(stack, hook, **kwargs)
        assert response.status_code == status, (status, response.text)
        assert response.json()["detail"]
        refused.append(hook.event_id)

    order, _ = order_hook(shop, [(Ids.next(), variant, 1)])
    tampered = order.body.replace(b'"quantity":1', b'"quantity":9')
    expect(401, order, body=tampered)  # body changed after signing
    expect(401, order, headers={**order.headers, "X-Shopify-Hmac-Sha256": "not base64!"})
    expect(401, order, headers={k: v for k, v in order.headers.items() if "Hmac" not in k})
    expect(401, order, headers=_resigned(order, order.body, secret="someone-elses-secret"))

    malformed = b'{"id": 1, "line_items": ['
    expect(400, order, body=malformed, headers=_resigned(order, malformed))
    too_deep = b"[" * 10_000 + b"]" * 10_000
    expect(400, order, body=too_deep, headers=_resigned(order, too_deep))
    # JSON on the wire is UTF-8 without a byte order mark (a number of 5,000 digits is JSON,
    # set aside as a dead letter: tests/integration/test_poison.py).
    with_bom = b"\xef\xbb\xbf" + order.body
    expect(400, order, body=with_bom, headers=_resigned(order, with_bom))
    not_json_numbers = order.body.replace(b'"quantity":1', b'"quantity":NaN')
    expect(400, order, body=not_json_numbers, headers=_resigned(order, not_json_numbers))
    deep_with_nan_text = b'{"title": "NaN", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    expect(400, order, body=deep_with_nan_text, headers=_resigned(order, deep_with_nan_text))
    no_topic = {k: v for k, v in order.headers.items() if k != "X-Shopify-Topic"}
    expect(400, order, headers=no_topic)
    # Signed with the shop's secret, which is found by the shop's domain: it was told 401
    # "invalid HMAC signature" (an outside test).
    no_shop = {k: v for k, v in order.headers.items() if k != "X-Shopify-Shop-Domain"}
    expect(400, order, headers=no_shop)

    oversized = json.dumps({"id": 1, "padding": "x" * (1024 * 1024)}).encode()
    expect(413, order, body=oversized, headers=_resigned(order, oversized))

    stranger, _ = order_hook("never-installed.myshopify.com", [(Ids.next(), variant, 1)])
    expect(404, stranger)

    produced = _raw_topic_event_ids(stack)
    assert produced.isdisjoint(refused)
    assert scalar(stack, "SELECT count(*) FROM order_lines WHERE shop = %s", shop) == 0
    assert scalar(stack, "SELECT count(*) FROM webhook_inbox WHERE shop = %s", shop) == 0
    assert scalar(stack, "SELECT count(*) FROM dead_letters WHERE shop = %s", shop) == 0

    # …and the process keeps serving.
    deliver_ok(stack, product_hook(shop, variant))
    good, _ = order_hook(shop, [(Ids.next(), variant, 2)])
    deliver_ok(stack, good)
    wait_until(lambda: units_sold(stack, shop, variant.variant_id) == 2, what="good order")


def test_a_rotated_secret_is_still_accepted(stack: Stack) -> None:
    shop = new_shop(stack)
    variant = make_variant()
    hook, _ = order_hook(shop, [(Ids.next(), variant, 1)])
    response = deliver(stack, hook, headers=_resigned(hook, hook.body, "an-old-rotated-secret"))
    assert response.status_code == 200


def test_customer_data_never_reaches_kafka(stack: Stack) -> None:
    shop = new_shop(stack)
    hook, order_id = order_hook(shop, [(Ids.next(), make_variant(), 1)])
    assert b"jane.doe@example.com" in hook.body and b"Main St" in hook.body
    deliver_ok(stack, hook)
    mine = [e for e in _raw_envelopes(stack) if e["event_id"] == hook.event_id]
    assert len(mine) == 1
    envelope = mine[0]
    assert envelope["payload"]["id"] == order_id
    assert envelope["shop"] == shop and envelope["topic"] == "orders/create"
    text = json.dumps(envelope)
    for pii in ("jane.doe@example.com", "Jane", "Doe", "Main St", "+15551234567"):
        assert pii not in text


def test_privacy_webhooks_are_verified_and_acknowledged(stack: Stack) -> None:
    shop = new_shop(stack)
    payload = {
        "shop_id": 1,
        "shop_domain": shop,
        "customer": {"id": 5, "email": "a@b.c"},
        "orders_to_redact": [1, 2],
    }
    hook = signed_webhook("customers/redact", shop, payload, SECRET)
    answer = deliver(stack, hook)
    assert answer.status_code == 200 and "no customer data" in answer.json()["detail"]
    bad = {**hook.headers, "X-Shopify-Hmac-Sha256": sign(hook.body, b"wrong")}
    assert deliver(stack, hook, headers=bad).status_code == 401
    assert hook.event_id not in _raw_topic_event_ids(stack)


def test_shop_redact_erases_the_shop(stack: Stack) -> None:
    shop = new_shop(stack)
    variant = make_variant()
    deliver_ok(stack, product_hook(shop, variant))
    order, _ = order_hook(shop, [(Ids.next(), variant, 1)])
    deliver_ok(stack, order)
    wait_until(lambda: units_sold(stack, shop, variant.variant_id) == 1, what="order")
    # Shopify sends shop/redact 48 hours after an uninstall. For a shop installed here, one
    # replayed from an earlier uninstall (or sent late) erases nothing: an outside test wiped
    # a live shop that way.
    privacy = {"shop_id": 1, "shop_domain": shop}
    stale = datetime.now(UTC) - timedelta(days=400)
    deliver_ok(stack, signed_webhook("shop/redact", shop, privacy, SECRET, triggered_at=stale))
    deliver_ok(stack, signed_webhook("shop/redact", shop, privacy, SECRET))
    later, _ = order_hook(shop, [(Ids.next(), variant, 2)])
    deliver_ok(stack, later)  # the shop's webhooks are applied in order: the redacts went first
    wait_until(lambda: units_sold(stack, shop, variant.variant_id) == 3, what="the shop kept")
    uninstall = {"id": 1, "myshopify_domain": shop}
    # An uninstall replayed with a trigger time older than any retry carries was read as
    # "now": it disconnected the shop installed since, and a redact then erased it (an
    # outside test). Triggered before the install, it changes nothing.
    for age in (timedelta(hours=49), timedelta(days=400)):
        old = datetime.now(UTC) - age
        deliver_ok(
            stack, signed_webhook("app/uninstalled", shop, uninstall, SECRET, triggered_at=old)
        )
    deliver_ok(stack, signed_webhook("shop/redact", shop, privacy, SECRET))
    still, _ = order_hook(shop, [(Ids.next(), variant, 4)])
    deliver_ok(stack, still)
    wait_until(lambda: units_sold(stack, shop, variant.variant_id) == 7, what="still installed")
    assert scalar(stack, "SELECT uninstalled_at FROM shops WHERE domain = %s", shop) is None
    deliver_ok(stack, signed_webhook("app/uninstalled", shop, uninstall, SECRET))
    wait_until(
        lambda: scalar(stack, "SELECT uninstalled_at FROM shops WHERE domain = %s", shop),
        what="the shop uninstalled",
    )
    deliver_ok(stack, signed_webhook("shop/redact", shop, privacy, SECRET))
    wait_until(
        lambda: scalar(stack, "SELECT count(*) FROM shops WHERE domain = %s", shop) == 0,
        what="shop erased",
    )
    for table in ("variants", "order_lines", "daily_demand", "demand_ledger"):
        assert scalar(stack, f"SELECT count(*) FROM {table} WHERE shop = %s", shop) == 0, table
    # Shopify retries a privacy request until it gets a 200: of an erased shop, or one never
    # installed here, nothing is held, and that is the answer. Other topics stay refused.
    never = f"never{Ids.next()}.myshopify.com"
    for domain in (shop, never):
        body = {"shop_id": 1, "shop_domain": domain}
        for topic in ("shop/redact", "customers/redact", "customers/data_request"):
            answer = deliver(stack, signed_webhook(topic, domain, body, SECRET))
            assert answer.status_code == 200, (domain, topic, answer.text)
        assert deliver(stack, product_hook(domain, make_variant())).status_code == 404


def test_health_and_metrics(stack: Stack) -> None:
    assert httpx.get(f"{stack.base_url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{stack.base_url}/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"database": True, "kafka": True, "pipeline": True}
    assert ready.json()["oldest_unapplied_webhook_seconds"] < 60

    def refused_count() -> float:
        text = httpx.get(f"{stack.base_url}/metrics").text
        # Unverified requests are counted without their (untrusted) topic.
        line = 'stockpulse_webhooks_total{outcome="401",topic="-"}'
        return next((float(x.split()[-1]) for x in text.splitlines() if x.startswith(line)), 0.0)

    before = refused_count()
    probe = signed_webhook("metrics/probe", new_shop(stack), {"id": 1}, "not-our-secret")
    assert deliver(stack, probe).status_code == 401
    assert refused_count() == before + 1
    assert 'topic="metrics/probe"' not in httpx.get(f"{stack.base_url}/metrics").text
    text = httpx.get(f"{stack.base_url}/metrics").text
    assert "stockpulse_webhook_ingress_seconds_count" in text
    assert "stockpulse_oldest_unapplied_webhook_seconds" in text
    assert 'stockpulse_dead_letters_open{stage="ingress"}' in text


def test_unknown_shop_feed_is_refused(stack: Stack) -> None:
    # Closing before accepting makes the server refuse the handshake with 403.
    url = f"ws://127.0.0.1:{stack.web_port}/ws/shops/nope.myshopify.com"
    with pytest.raises(InvalidStatus) as refused, ws.connect(url):
        pass
    assert refused.value.response.status_code == 403
