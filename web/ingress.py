"""POST /webhooks/shopify: verify, strip PII, hand to Kafka, and only then say 200."""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime

from litestar import Controller, Request, Response, post
from litestar.datastructures import State
from litestar.exceptions import ClientException

from connectors.kafka.producer import BrokerUnavailable
from connectors.kafka.topics import RAW_WEBHOOKS, WebhookEnvelope, dumps, shop_key
from connectors.shopify import webhooks
from web import metrics

log = logging.getLogger(__name__)


def _answer(status: int, message: str, topic: str, outcome: str | None = None) -> Response:
    metrics.webhooks.labels(topic=topic or "-", outcome=outcome or str(status)).inc()
    return Response({"status": status, "message": message}, status_code=status)


class WebhookController(Controller):
    path = "/webhooks/shopify"

    @post("", status_code=200)
    async def receive(self, request: Request, state: State) -> Response:
        started = time.perf_counter()
        topic_header = request.headers.get(webhooks.TOPIC_HEADER, "")
        try:
            body = await request.body()
        except ClientException as exc:
            if exc.status_code == 413:
                return _answer(413, "body too large", topic_header)
            raise
        # Nothing is trusted, not even the headers, before the signature checks out.
        if not webhooks.verify(body, request.headers.get(webhooks.HMAC_HEADER),
                               state.settings.webhook_secrets):
            return _answer(401, "invalid HMAC signature", topic_header)
        headers = webhooks.WebhookHeaders.parse(request.headers)
        if headers is None:
            return _answer(400, "missing Shopify webhook headers", topic_header)
        try:
            payload = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError):
            return _answer(400, "body is not valid JSON", headers.topic)
        if not isinstance(payload, dict):
            return _answer(400, "body is not a JSON object", headers.topic)
        try:
            installed = await state.shops.is_installed(headers.shop)
        except Exception:
            log.exception("could not read installed shops")
            return _answer(503, "temporarily unavailable", headers.topic)
        if not installed:
            return _answer(404, "unknown shop", headers.topic)

        kept = webhooks.project(headers.topic, payload)
        if kept is None:
            # Customer privacy requests land here too: we hold no customer data to report or erase.
            return _answer(200, "ignored", headers.topic, outcome="ignored")
        envelope = WebhookEnvelope(
            topic=headers.topic,
            shop=headers.shop,
            event_id=headers.event_id,
            webhook_id=headers.webhook_id,
            triggered_at=headers.triggered_at,
            api_version=headers.api_version,
            received_at=datetime.now(UTC).isoformat(),
            payload=kept,
        )
        try:
            await state.producer.send(RAW_WEBHOOKS, dumps(envelope), key=shop_key(headers.shop))
        except BrokerUnavailable as exc:
            log.warning("broker unavailable, asking Shopify to retry: %s", exc)
            return _answer(503, "temporarily unavailable, retry later", headers.topic)
        metrics.ingress_seconds.observe(time.perf_counter() - started)
        return _answer(200, "accepted", headers.topic, outcome="accepted")
