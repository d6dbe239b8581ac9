"""POST /webhooks/shopify: verify, strip PII, hand to Kafka, and only then say 200.

This is the hottest path of the product, so it is a plain ASGI handler: Litestar routes to it,
but dependency injection, signature parsing and response objects are skipped (they cost about
half of the ingress's CPU under load). ``accept_webhook`` holds the logic; the rest is wiring.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from litestar import asgi
from litestar.types import HTTPResponseStartEvent, Receive, Scope, Send

from connectors.kafka.producer import BrokerUnavailable
from connectors.kafka.topics import RAW_WEBHOOKS, WebhookEnvelope, dumps, shop_key
from connectors.shopify import webhooks
from web import metrics

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Outcome:
    status: int
    message: str
    label: str  # the metrics outcome: accepted, ignored, or the status code


def _refuse(status: int, message: str) -> Outcome:
    return Outcome(status, message, str(status))


async def accept_webhook(body: bytes, headers: Mapping[str, str], state: Any) -> Outcome:
    """Decide what to answer Shopify for one delivery, producing it to Kafka when accepted.

    ``headers`` must have lower-case names. Nothing is produced or written unless the answer is
    200 "accepted".
    """
    # Nothing is trusted, not even the headers, before the signature checks out.
    if not webhooks.verify(body, headers.get(webhooks.HMAC_HEADER), state.settings.webhook_secrets):
        return _refuse(401, "invalid HMAC signature")
    parsed = webhooks.WebhookHeaders.parse(headers)
    if parsed is None:
        return _refuse(400, "missing Shopify webhook headers")
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return _refuse(400, "body is not valid JSON")
    if not isinstance(payload, dict):
        return _refuse(400, "body is not a JSON object")
    try:
        installed = await state.shops.is_installed(parsed.shop)
    except Exception:
        log.exception("could not read installed shops")
        return _refuse(503, "temporarily unavailable")
    if not installed:
        return _refuse(404, "unknown shop")
    kept = webhooks.project(parsed.topic, payload)
    if kept is None:
        # Customer privacy requests land here too: we hold no customer data to report or erase.
        return Outcome(200, "ignored", "ignored")
    envelope = WebhookEnvelope(
        topic=parsed.topic,
        shop=parsed.shop,
        event_id=parsed.event_id,
        webhook_id=parsed.webhook_id,
        triggered_at=parsed.triggered_at,
        api_version=parsed.api_version,
        received_at=datetime.now(UTC).isoformat(),
        payload=kept,
    )
    try:
        await state.producer.send(RAW_WEBHOOKS, dumps(envelope), key=shop_key(parsed.shop))
    except BrokerUnavailable as exc:
        log.warning("broker unavailable, asking Shopify to retry: %s", exc)
        return _refuse(503, "temporarily unavailable, retry later")
    return Outcome(200, "accepted", "accepted")


class _TooLarge(Exception):
    pass


async def _read_body(receive: Receive, declared: str | None, limit: int) -> bytes:
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _TooLarge
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionError("client went away")
        chunk: bytes = message.get("body", b"")  # type: ignore[assignment]
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _respond(send: Send, status: int, message: str) -> None:
    body = json.dumps({"status": status, "message": message}).encode()
    start: HTTPResponseStartEvent = {
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
    }
    await send(start)
    await send({"type": "http.response.body", "body": body, "more_body": False})


@asgi("/webhooks/shopify", copy_scope=False)
async def shopify_webhooks(scope: Scope, receive: Receive, send: Send) -> None:
    if scope.get("method") != "POST":
        await _respond(send, 405, "use POST")
        return
    started = time.perf_counter()
    state = scope["litestar_app"].state
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
    try:
        body = await _read_body(
            receive, headers.get("content-length"), state.settings.webhook_max_body_bytes
        )
    except _TooLarge:
        outcome = _refuse(413, "body too large")
    except ConnectionError:
        return
    else:
        outcome = await accept_webhook(body, headers, state)
    # Only a signed request may name its topic: an unverified header as a label would let anyone
    # grow the metrics without bound.
    verified = outcome.status not in (401, 413)
    topic = (headers.get(webhooks.TOPIC_HEADER) or "-") if verified else "-"
    metrics.webhooks.labels(topic=topic, outcome=outcome.label).inc()
    if outcome.label == "accepted":
        metrics.ingress_seconds.observe(time.perf_counter() - started)
    await _respond(send, outcome.status, outcome.message)
