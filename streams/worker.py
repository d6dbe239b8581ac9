"""The Faust worker: raw webhooks → per-SKU events → PostgreSQL → ``stockpulse.updates``.

At-least-once throughout; correctness comes from the idempotent write path (connectors.db.ledger)
and truth lives in PostgreSQL, so nothing here depends on Faust table recovery (no tables).

:func:`build_app` makes the app and its :class:`~streams.context.WorkerContext`, then lets each
module register its agents and timers; :func:`run_worker` runs it (``stockpulse worker``).
"""

from __future__ import annotations

from typing import Any

import faust

from connectors.kafka.topics import ALERTS, FORECASTS, RAW_WEBHOOKS, SKU_EVENTS, UPDATES
from connectors.settings import Settings, get_settings
from streams import (
    alerting,
    applying,
    backfill_schedule,
    forecast_publishing,
    normalising,
    outbox,
    partitions,
    reconcile_schedule,
    refit_schedule,
    relay,
    transport,
)
from streams.context import Topics, WorkerContext
from streams.forecasting import ForecastKeeper


def build_app(settings: Settings) -> faust.App:
    """The worker's app with every agent and timer registered, ready to run."""
    app = faust.App(
        "stockpulse",
        broker=transport.broker_urls(settings.bootstrap_servers),
        store="memory://",
        topic_partitions=settings.kafka_topic_partitions,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        broker_session_timeout=settings.stockpulse_kafka_session_timeout,
        broker_rebalance_timeout=settings.stockpulse_kafka_session_timeout,
        broker_heartbeat_interval=1.0,
        broker_commit_interval=2.8,
        web_enabled=False,
        # Faust keeps only small local files here (no tables are used); truth lives in PostgreSQL.
        datadir=settings.stockpulse_worker_datadir,
    )
    ctx = WorkerContext(
        settings=settings,
        topics=Topics(
            raw_webhooks=_raw_topic(app, RAW_WEBHOOKS),
            sku_events=_raw_topic(app, SKU_EVENTS),
            updates=_raw_topic(app, UPDATES),
            forecasts=_raw_topic(app, FORECASTS),
            alerts=_raw_topic(app, ALERTS),
        ),
        keeper=ForecastKeeper(settings),
    )

    async def close_database(sender: Any, *_: Any, signal: Any, **__: Any) -> None:
        await ctx.close()

    # Faust's stubs take no coroutine function here, though its signals await one.
    app.on_before_shutdown.connect(close_database)  # type: ignore[arg-type]

    for module in (
        normalising,
        backfill_schedule,
        applying,
        forecast_publishing,
        alerting,
        outbox,
        relay,
        partitions,
        refit_schedule,
        reconcile_schedule,
    ):
        module.register(app, ctx)
    return app


def _raw_topic(app: faust.App, name: str) -> faust.TopicT:
    """Keys and values as bytes: the values are our own JSON, parsed where they are used."""
    return app.topic(
        name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
    )


def run_worker(loglevel: str = "warn") -> None:
    """Run the worker in this process until it is told to stop."""
    worker = faust.Worker(build_app(get_settings()), loglevel=loglevel)
    # Faust's terminal spinner lowers the root logger to DEBUG so it can spin on every record;
    # every debug call in aiokafka and Faust then builds a record, a tenth of the worker's CPU.
    worker.spinner = None
    worker.execute_from_commandline()
