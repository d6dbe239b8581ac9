"""Prometheus metrics of the web process, served at /metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

registry = CollectorRegistry()

webhooks = Counter(
    "stockpulse_webhooks_total",
    "Webhooks received, by Shopify topic (known topics only, else 'other'; '-' when unsigned)"
    " and outcome (accepted, duplicate, ignored, dead_lettered, or the HTTP error).",
    ["topic", "outcome"],
    registry=registry,
)
ingress_seconds = Histogram(
    "stockpulse_webhook_ingress_seconds",
    "Time from request received to answer, accepted webhooks only.",
    buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
    registry=registry,
)
sockets = Gauge("stockpulse_websockets", "Open WebSocket feeds.", registry=registry)
socket_dropped = Counter(
    "stockpulse_websocket_dropped_total",
    "Messages dropped because a socket's backlog was full (slow client).",
    registry=registry,
)
hub_messages = Counter(
    "stockpulse_hub_messages_total", "Messages the hub read from Kafka.", registry=registry
)
oldest_unapplied = Gauge(
    "stockpulse_oldest_unapplied_webhook_seconds",
    "Age of the oldest accepted webhook the worker has not applied yet (0: none waiting).",
    registry=registry,
)
dead_letters = Gauge(
    "stockpulse_dead_letters_open",
    "Dead letters not replayed yet, by stage (ingress, normalise, apply, backfill).",
    ["stage"],
    registry=registry,
)
plan_failures = Gauge(
    "stockpulse_plan_failures",
    "SKUs whose plan the worker could not make, each kept with its reason in plan_failures"
    " (their shops' other SKUs are planned; a plan made later clears the SKU).",
    registry=registry,
)
reconciliation_corrections = Gauge(
    "stockpulse_reconciliation_corrections_total",
    "Corrections reconciliation passes made to what webhooks left wrong, by kind (stock_level,"
    " order_line, variant), over all shops (rows kept; a shop's erasure removes its own).",
    ["kind"],
    registry=registry,
)
reconciliation_age = Gauge(
    "stockpulse_reconciliation_oldest_pass_seconds",
    "Seconds since the connected shop longest without a successful reconciliation had one"
    " (0: none has run yet).",
    registry=registry,
)
alert_emails = Gauge(
    "stockpulse_alert_emails",
    "Alert emails by state: pending (not tried yet), retrying (a temporary failure, tried"
    " again with backoff), failed (given up: shown on the Alerts page) and sent.",
    ["state"],
    registry=registry,
)
alert_email_oldest_unsent = Gauge(
    "stockpulse_alert_email_oldest_unsent_seconds",
    "Age of the oldest alert email not sent yet, pending or retrying (0: none).",
    registry=registry,
)
alert_oldest_ungrouped = Gauge(
    "stockpulse_alert_oldest_ungrouped_seconds",
    "Age of the oldest immediate alert delivery the sender has not put into an email yet"
    " (0: none waiting); it grows when the sender is down.",
    registry=registry,
)
