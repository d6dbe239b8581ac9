"""POST /webhooks/shopify: verify, validate, commit to the inbox, and only then say 200.

This is the hottest path of the product, so it is a plain ASGI handler: Litestar routes to it,
but dependency injection, signature parsing and response objects are skipped. ``accept_webhook``
holds the logic; the rest is wiring.

The answers, in the order they are decided:

* 401: the body does not verify with the secret of the app the named shop is connected through
  (or, for a shop we do not know, with this deployment's app secret);
* 404: correctly signed, for a shop that is not installed. Shopify's privacy topics still
  verify for an uninstalled shop whose data is held (shop/redact comes 48 hours after the
  uninstall), and are answered 200 for a shop of which nothing is held;
* 503: the shop's own app secret is sealed under a key this process lacks;
* 400: missing Shopify headers, or a body that is not JSON at all;
* 200 ``dead_lettered``: signed JSON that is not a usable payload of its topic (wrong types,
  absurd ranges, missing ids). Retrying would not help, so Shopify must not; the body is kept in
  ``dead_letters`` without customer data, with the reason;
* 200 ``accepted`` / ``duplicate``: committed to the webhook inbox (or already there);
* 503: the database could not commit it in time: Shopify retries.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from litestar import asgi
from litestar.types import HTTPResponseStartEvent, Receive, Scope, Send

from connectors.db import dead_letters
from connectors.shopify import payloads, webhooks
from web import metrics
from web.inbox import InboxFull
from web.shops import SecretUnavailable

log = logging.getLogger(__name__)

# Shopify gives up after 5 s; answer 503 well before so that it retries.
COMMIT_TIMEOUT_S = 3.0


@dataclass(frozen=True, slots=True)
class Outcome:
    status: int
    message: str
    label: str  # the metrics outcome: a closed set (accepted, duplicate, …, or the status)
    verified: bool = True  # whether the body's signature checked out


def _refuse(status: int, message: str, *, verified: bool = True) -> Outcome:
    return Outcome(status, message, str(status), verified)


def _unavailable(what: str) -> Outcome:
    log.warning("%s; asking Shopify to retry", what)
    return _refuse(503, "temporarily unavailable, retry later")


async def _verified_secrets(body: bytes, headers: Mapping[str, str], state: Any) -> Outcome | None:
    """None when the body verifies for the shop it names; otherwise the refusal."""
    signature = headers.get(webhooks.HMAC_HEADER)
    shop = (headers.get(webhooks.SHOP_HEADER) or "").strip().lower()
    # An uninstalled shop's data stays until its shop/redact, 48 hours later: the privacy
    # topics still verify for it; nothing else does.
    held = (headers.get(webhooks.TOPIC_HEADER) or "").strip() in webhooks.PRIVACY_TOPICS
    directory = state.shops
    if not shop:  # refused as incomplete once the signature checks out
        if webhooks.verify(body, signature, directory.app_secrets):
            return None
        # A shop on an app of its own signs with a secret found by its domain: without the
        # header, "invalid HMAC" would send the sender looking at the wrong thing.
        return _refuse(
            400,
            "missing X-Shopify-Shop-Domain header: the signature cannot be checked without it",
            verified=False,
        )
    secrets = await directory.cached_secrets(shop, held)
    if secrets is None and not webhooks.verify(body, signature, directory.app_secrets):
        # Unknown to the cache and not signed by this deployment's app: perhaps a shop
        # connected a moment ago with an app of its own. The cache is reloaded for that at
        # most once a second, so unsigned floods cost no more than that.
        secrets = await directory.recent_secrets(shop, held=held)
        if secrets is None:
            # An uninstalled shop on an app of its own: signed right, it is told so.
            try:
                kept = None if held else await directory.cached_secrets(shop, held=True)
            except SecretUnavailable:  # not verifiable here: refused like any other
                kept = None
            if kept is not None and webhooks.verify(body, signature, kept):
                return _refuse(404, "shop not installed")
            return _refuse(401, "invalid HMAC signature", verified=False)
    elif secrets is None:
        secrets = await directory.lookup_secrets(shop, held)
        if secrets is None:
            if held:
                # Shopify's privacy requests must get a 200; of a shop never installed here
                # (or erased already) nothing is held, which is the answer.
                return Outcome(200, "no data of this shop is held", "ignored")
            return _refuse(404, "unknown shop")
    if not webhooks.verify(body, signature, secrets):
        return _refuse(401, "invalid HMAC signature", verified=False)
    return None


def _finite_or_text(number: str) -> float | str:
    # 1e400 reads as inf, which a jsonb column refuses: the dead letter would fail, and the
    # webhook with it, on every retry.
    value = float(number)
    return value if math.isfinite(value) else number


def _int_or_text(number: str) -> int | str:
    # Past Python's 4,300 digits a number would fail the letter, and the webhook with it.
    return int(number) if len(number) <= 4000 else number


def _readable_json(topic: str, body: bytes) -> Any:
    """The body as JSON for a dead letter: only the fields its topic's model declares, so no
    customer data (NaN, Infinity and numbers too large for a float as text). A lone surrogate
    escape becomes "?" (PostgreSQL's jsonb refuses it, and the letter would fail with the
    webhook on every retry); a body nested too deeply to walk is kept as a note. An integer of
    more than 4,000 digits is kept as text."""
    try:
        parsed = json.loads(
            body, parse_constant=str, parse_float=_finite_or_text, parse_int=_int_or_text
        )
        kept = webhooks.without_pii(payloads.declared_only(topic, parsed))
        text = json.dumps(kept, ensure_ascii=False).encode("utf-8", "replace")
        return json.loads(text)
    except RecursionError:
        return "<nested too deeply to keep>"


async def _dead_letter(
    state: Any, parsed: webhooks.WebhookHeaders, body: bytes, error: payloads.PayloadRejected
) -> Outcome:
    reason = str(error)
    data = _readable_json(parsed.topic, body)
    # A letter replays what it keeps: not a body read with two meanings, and not one that was
    # no JSON object at all (its kind only is kept, and its replay failed as "invalid JSON").
    replayable = isinstance(data, dict) and not isinstance(error, payloads.UnreadablePayload)
    try:
        async with asyncio.timeout(COMMIT_TIMEOUT_S):
            async with state.pool.connection() as conn, conn.transaction():
                await dead_letters.record(
                    conn,
                    stage="ingress",
                    shop=parsed.shop,
                    event_id=parsed.event_id,
                    kind="webhook",
                    topic=parsed.topic,
                    data=data,
                    error=reason,
                    replayable=replayable,
                )
    except Exception as exc:
        return _unavailable(f"could not store a dead letter: {exc!r}")
    log.warning("dead-lettered %s from %s: %s", parsed.topic, parsed.shop, reason)
    return Outcome(200, f"not a usable {parsed.topic} payload: {reason}", "dead_lettered")


def _names_another_shop(payload: payloads.ShopifyPayload, shop: str) -> bool:
    if isinstance(payload, payloads.ShopRedact):
        return payload.shop_domain != shop
    if isinstance(payload, payloads.AppUninstalled):
        return payload.myshopify_domain != shop
    return False


async def accept_webhook(body: bytes, headers: Mapping[str, str], state: Any) -> Outcome:
    """Decide what to answer Shopify for one delivery; see the module docstring.

    ``headers`` must have lower-case names. Nothing is stored unless the answer is 200.
    """
    try:
        refused = await _verified_secrets(body, headers, state)
    except Exception as exc:
        return _unavailable(f"could not read installed shops: {exc!r}")
    if refused is not None:
        return refused
    parsed = webhooks.WebhookHeaders.parse(headers)
    if parsed is None:
        return _refuse(400, "missing or malformed Shopify webhook headers")
    if parsed.topic in webhooks.CUSTOMER_PRIVACY_TOPICS:
        # Customer data never passes the ingress (the payload models do not declare it), so
        # there is nothing to hand over or erase: the answer says so.
        return Outcome(
            200, "Stockpulse stores no customer data: nothing to report or erase", "ignored"
        )
    if parsed.topic not in payloads.MODELS:
        return Outcome(200, "ignored", "ignored")
    try:
        payload = payloads.parse_payload(parsed.topic, body)
    except payloads.NotJson:
        return _refuse(400, "body is not valid JSON")
    except payloads.PayloadRejected as exc:
        return await _dead_letter(state, parsed, body, exc)
    if _names_another_shop(payload, parsed.shop):
        return _refuse(401, "the payload names another shop than the header")
    delivery = {
        "shop": parsed.shop,
        "topic": parsed.topic,
        "event_id": parsed.event_id,
        "webhook_id": parsed.webhook_id,
        "signature": headers.get(webhooks.HMAC_HEADER),
        "triggered_at": parsed.triggered_at,
        "api_version": parsed.api_version,
        "payload": payload.model_dump_json(),
    }
    try:
        async with asyncio.timeout(COMMIT_TIMEOUT_S):
            row = await state.inbox.store(delivery)
    except InboxFull:
        return _unavailable("too many webhooks waiting for the database")
    except Exception as exc:
        return _unavailable(f"could not commit to the inbox: {exc!r}")
    if row is None:
        return Outcome(200, "duplicate", "duplicate")
    if parsed.topic == "app/uninstalled":
        # The earlier of Shopify's trigger and our receipt: a trigger stamped by a clock ahead
        # of ours must not outrank a reinstall made just after (the mark then never cleared).
        # Not shop/redact: it erases only a shop already uninstalled (connectors.db.ledger).
        moment = webhooks.lifecycle_moment(parsed.triggered_at, datetime.now(UTC))
        state.shops.note_uninstall(parsed.shop, moment)
    state.publisher.offer(row)
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
    # The shape of every JSON answer of the app (Litestar's), though Shopify reads none.
    body = json.dumps({"status_code": status, "detail": message}).encode()
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
    settings = state.settings
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
    try:
        async with asyncio.timeout(settings.webhook_body_timeout_seconds):
            body = await _read_body(
                receive, headers.get("content-length"), settings.webhook_max_body_bytes
            )
    except _TooLarge:
        outcome = _refuse(413, "body too large", verified=False)
    except TimeoutError:
        outcome = _refuse(408, "body not received in time", verified=False)
    except ConnectionError:
        return
    else:
        try:
            outcome = await accept_webhook(body, headers, state)
        except Exception:
            # A bug, not the sender's fault: never a 500, and Shopify keeps the webhook for us.
            log.exception("unexpected error accepting a webhook")
            outcome = _refuse(503, "temporarily unavailable, retry later")
    # Labels come from closed sets, and a topic only from a signed request.
    topic = webhooks.topic_label(headers.get(webhooks.TOPIC_HEADER)) if outcome.verified else "-"
    metrics.webhooks.labels(topic=topic, outcome=outcome.label).inc()
    if outcome.label == "accepted":
        metrics.ingress_seconds.observe(time.perf_counter() - started)
    await _respond(send, outcome.status, outcome.message)
