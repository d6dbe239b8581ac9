"""The Faust worker: raw webhooks → per-SKU events → PostgreSQL → ``stockpulse.updates``.

At-least-once throughout; correctness comes from the idempotent write path (connectors.db.ledger)
and truth lives in PostgreSQL, so nothing here depends on Faust table recovery.

Faust's ``take()`` acknowledges a batch even when its body raises, so a batch body here never
lets an exception escape: transient failures are retried in place, poison input is dead-lettered.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Sequence
from dataclasses import asdict
from functools import partial
from typing import Any

import faust
from psycopg_pool import AsyncConnectionPool

from connectors.db import dead_letters, inbox, ledger
from connectors.db.migrate import ensure_partitions
from connectors.db.pool import DictConnection, open_pool
from connectors.kafka.topics import (
    FORECASTS,
    RAW_WEBHOOKS,
    SKU_EVENTS,
    UPDATES,
    SkuEvent,
    WebhookEnvelope,
    dumps,
)
from connectors.settings import get_settings
from streams import poison, relay, transport
from streams.forecasting import ForecastKeeper
from streams.nightly_schedule import NightlySchedule
from streams.normalise import normalise
from streams.publish import build_updates

log = logging.getLogger("stockpulse.worker")
settings = get_settings()

BATCH_MAX = 500
BATCH_WITHIN_S = 0.01
RETRY_BACKOFF_MAX_S = 5.0
# Older than this, an outbox row was left by a worker that crashed: its owner deletes its own
# rows within 5 s (the timer below), so a healthy worker's rows are never taken.
STALE_OUTBOX_S = 15.0
FORECAST_CHECK_S = float(os.environ.get("STOCKPULSE_FORECAST_CHECK_S", "30"))
FORECAST_GATHER_S = 0.25
RELAY_CHECK_S = 2.0
PRUNE_S = 30.0

app = faust.App(
    "stockpulse",
    broker=[f"{transport.SCHEME}://{s}" for s in settings.bootstrap_servers],
    store="memory://",
    topic_partitions=settings.kafka_topic_partitions,
    consumer_auto_offset_reset="earliest",
    producer_acks=-1,
    broker_session_timeout=float(os.environ.get("STOCKPULSE_KAFKA_SESSION_TIMEOUT", "10")),
    broker_rebalance_timeout=float(os.environ.get("STOCKPULSE_KAFKA_SESSION_TIMEOUT", "10")),
    broker_heartbeat_interval=1.0,
    broker_commit_interval=2.8,
    web_enabled=False,
    # Faust keeps only small local files here (no tables are used); truth lives in PostgreSQL.
    datadir=os.environ.get("STOCKPULSE_WORKER_DATADIR", ".data/worker"),
)

_raw = app.topic(
    RAW_WEBHOOKS, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
)
_sku_events = app.topic(
    SKU_EVENTS, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
)
_updates = app.topic(
    UPDATES, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
)

_forecasts = app.topic(
    FORECASTS, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
)
_keeper = ForecastKeeper(settings)
# SKUs whose forecasts are due after their batch (or could not be refreshed: the timer retries).
_forecasts_owed: dict[str, set[int]] = {}
_forecasts_wanted = asyncio.Event()
_forecast_round = asyncio.Lock()

_pool: AsyncConnectionPool[DictConnection] | None = None
_pool_lock = asyncio.Lock()


async def pool() -> AsyncConnectionPool[DictConnection]:
    global _pool
    async with _pool_lock:
        if _pool is None:
            _pool = await open_pool(settings.database_url, max_size=4)
    return _pool


async def _retrying(what: str, work: Any) -> Any:
    """Run ``work()`` until it succeeds; the worker must not skip a batch it could not apply."""
    delay = 0.1
    while True:
        try:
            return await work()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s failed; retrying in %.1fs", what, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_BACKOFF_MAX_S)


async def _send_all(topic: faust.TopicT, messages: list[tuple[bytes, bytes]]) -> None:
    """Produce and wait for every acknowledgement."""
    futures = [await topic.send(key=key, value=value) for key, value in messages]
    await asyncio.gather(*futures)


async def _note_normalised(
    notes: list[tuple[int, int]],
    normalised: list[int],
    unusable: list[tuple[WebhookEnvelope | bytes, str]],
) -> None:
    """Note in the inbox what each webhook became, and set aside what it cannot become, before
    the events are produced: an event applied before its note exists would leave the note."""
    db = await pool()
    async with db.connection() as conn, conn.transaction():
        await inbox.mark_normalised(conn, normalised, notes)
        for envelope, reason in unusable:
            log.error("dead-lettering an unusable webhook: %s", reason)
            if isinstance(envelope, WebhookEnvelope):
                where = {"shop": envelope.shop, "event_id": envelope.event_id}
                data = envelope.model_dump(mode="json")
            else:
                where = {"shop": "", "event_id": ""}
                data = {"raw": envelope.decode("utf-8", "replace")[:100_000].replace("\x00", "")}
            await dead_letters.record(
                conn,
                stage="normalise",
                kind="webhook",
                topic=envelope.topic if isinstance(envelope, WebhookEnvelope) else None,
                data=data,
                error=reason,
                **where,
            )


@app.agent(_raw)
async def normalise_webhooks(stream: faust.StreamT) -> None:
    async for batch in stream.take(BATCH_MAX, within=BATCH_WITHIN_S):
        messages: list[tuple[bytes, bytes]] = []
        notes: list[tuple[int, int]] = []
        normalised: list[int] = []
        unusable: list[tuple[WebhookEnvelope | bytes, str]] = []
        for raw in batch:
            try:
                envelope = WebhookEnvelope.model_validate_json(raw)
            except ValueError as exc:
                unusable.append((raw, f"unreadable envelope: {exc}"))
                continue
            try:
                events = normalise(envelope)
            except Exception as exc:  # pure code: whatever it raises, this message caused
                unusable.append((envelope, f"{type(exc).__name__}: {exc}"))
                events = []
            if envelope.delivery_id is not None:
                normalised.append(envelope.delivery_id)
                notes.extend((envelope.delivery_id, event.seq) for _, event in events)
            messages.extend((key, dumps(event)) for key, event in events)
        if notes or normalised or unusable:
            await _retrying(
                "noting normalised webhooks",
                partial(_note_normalised, notes, normalised, unusable),
            )
        await _retrying("producing sku events", partial(_send_all, _sku_events, messages))


class _PublishedOutbox:
    """Outbox rows whose updates the broker acknowledged. They are deleted in the next
    transaction rather than one of their own (one commit per batch); lost in a crash, they are
    only published once more. Callers take the ids before awaiting anything, so the agent and
    the timer never delete or drop each other's."""

    def __init__(self) -> None:
        self._ids: list[int] = []

    def add(self, ids: list[int]) -> None:
        self._ids.extend(ids)

    def take(self) -> list[int]:
        ids, self._ids = self._ids, []
        return ids


_published = _PublishedOutbox()


async def _apply_batch(events: Sequence[SkuEvent]) -> None:
    db = await pool()
    done = _published.take()
    try:
        async with db.connection() as conn, conn.transaction():
            if done:
                await ledger.delete_outbox(conn, done)
            changes, outbox_ids = await ledger.apply_events(conn, events)
            # Read inside the transaction (it sees its own writes); publish after commit.
            updates = await build_updates(conn, [asdict(t) for t in changes])
    except BaseException:
        _published.add(done)
        raise
    await _send_all(_updates, [(key, dumps(update)) for key, update in updates])
    _published.add(outbox_ids)
    for update in updates:
        _forecasts_owed.setdefault(update[1].shop, set()).add(update[1].variant_id)


async def _set_aside(event: SkuEvent, error: BaseException) -> None:
    db = await pool()
    try:
        async with db.connection() as conn, conn.transaction():
            await ledger.dead_letter(conn, event, error)
    except Exception as exc:
        if poison.is_infrastructure(exc):
            raise
        # Even its dead letter is refused: keep what can be kept rather than stall on it.
        async with db.connection() as conn, conn.transaction():
            await ledger.dead_letter(conn, event.model_copy(update={"data": {}}), error)


async def _publish_forecasts(shop: str, variant_ids: list[int] | None) -> int:
    # One forecast round at a time: the keeper's cache is not shared safely, and two rounds
    # taking the same SKUs' correction and model rows in different orders deadlocked.
    async with _forecast_round:
        db = await pool()
        async with db.connection() as conn:
            messages = await _keeper.forecasts(conn, shop, variant_ids)
    await _send_all(_forecasts, [(key, dumps(update)) for key, update in messages])
    return len(messages)


async def _pay_forecasts_owed() -> None:
    """Forecasts for the SKUs the last batches changed. A failure never fails the batch (its
    updates are committed and published); the SKUs stay owed and the timer retries them."""
    while _forecasts_owed:
        shop = next(iter(_forecasts_owed))
        ids = _forecasts_owed.pop(shop)
        try:
            await _publish_forecasts(shop, sorted(ids))
        except LookupError:
            log.info("%s is no longer installed; its forecasts are not owed", shop)
        except Exception:
            _forecasts_owed.setdefault(shop, set()).update(ids)
            log.exception("refreshing forecasts of %s failed; will retry", shop)
            return


@app.agent(_sku_events)
async def apply_sku_events(stream: faust.StreamT) -> None:
    async for batch in stream.take(BATCH_MAX, within=BATCH_WITHIN_S):
        events = []
        for raw in batch:
            try:
                events.append(SkuEvent.model_validate_json(raw))
            except ValueError as exc:
                # Only this worker writes the topic, so this is a bug, not outside data.
                log.error("dropping unreadable sku event: %s", exc)
        if events:
            await _retrying(
                "applying sku events", partial(poison.isolating, events, _apply_batch, _set_aside)
            )
            _forecasts_wanted.set()


@app.task
async def publish_forecasts() -> None:
    """Forecasts for the SKUs the last batches changed, off the apply path: the next batch's
    updates never wait for them. Gathering a short while first makes one round of queries
    serve the SKUs of many small batches, and a SKU changed twice is forecast once."""
    while True:
        await _forecasts_wanted.wait()
        await asyncio.sleep(FORECAST_GATHER_S)
        _forecasts_wanted.clear()
        await _pay_forecasts_owed()


@app.timer(interval=5.0)
async def flush_stale_outbox() -> None:
    """Publish what a crashed worker committed but never published."""
    try:
        db = await pool()
        async with db.connection() as conn:
            done = _published.take()
            if done:
                try:
                    await ledger.delete_outbox(conn, done)
                    await conn.commit()
                except BaseException:
                    _published.add(done)
                    raise
            rows = await ledger.take_stale_outbox(conn, STALE_OUTBOX_S)
            if not rows:
                return
            updates = await build_updates(conn, rows)
            await _send_all(_updates, [(key, dumps(update)) for key, update in updates])
            await ledger.delete_outbox(conn, [r["id"] for r in rows])
            await conn.commit()
            log.info("published %d updates left in the outbox", len(rows))
    except Exception:
        log.exception("flushing the outbox failed; will retry")


@app.timer(interval=RELAY_CHECK_S)
async def relay_unfinished_webhooks() -> None:
    """Put accepted webhooks the broker lost (or a crash stranded) back on the raw topic."""
    try:
        db = await pool()
        async with db.connection() as conn:
            await relay.republish_unfinished(conn, partial(_send_all, _raw))
    except Exception:
        log.exception("relaying unfinished webhooks failed; will retry")


@app.timer(interval=PRUNE_S)
async def prune_inbox() -> None:
    try:
        db = await pool()
        async with db.connection() as conn:
            await relay.prune_finished(conn)
    except Exception:
        log.exception("pruning the webhook inbox failed; will retry")


_shop_state: dict[str, tuple[object, int | None]] = {}


@app.timer(interval=FORECAST_CHECK_S)
async def refresh_forecasts() -> None:
    """Republish a shop's forecasts when its day closes or a nightly run commits, and pay any
    forecasts a failed refresh still owes."""
    try:
        await _pay_forecasts_owed()
        db = await pool()
        async with db.connection() as conn:
            cur = await conn.execute(
                "SELECT s.domain, (now() AT TIME ZONE s.timezone)::date AS today, "
                "(SELECT max(id) FROM forecast_runs r WHERE r.shop = s.domain "
                " AND r.status = 'committed') AS run FROM shops s WHERE s.uninstalled_at IS NULL"
            )
            shops = await cur.fetchall()
            await conn.commit()
        for shop in shops:
            state = (shop["today"], shop["run"])
            if _shop_state.get(shop["domain"]) != state:
                count = await _publish_forecasts(shop["domain"], None)
                _shop_state[shop["domain"]] = state
                log.info("republished %d forecasts of %s", count, shop["domain"])
    except Exception:
        log.exception("refreshing forecasts failed; will retry")


_nightly = (
    NightlySchedule(settings.nightly_time, settings.nightly_processes)
    if settings.nightly_time is not None
    else None
)


@app.timer(interval=float(os.environ.get("STOCKPULSE_NIGHTLY_CHECK_S", "60")))
async def schedule_nightly() -> None:
    """Start the nightly refit once each shop's local clock passes NIGHTLY_AT."""
    if _nightly is None:
        return
    try:
        db = await pool()
        async with db.connection() as conn:
            await _nightly.tick(conn)
    except Exception:
        log.exception("scheduling the nightly refit failed; will retry")


def _stop_nightly(sender: Any, *_: Any, signal: Any, **__: Any) -> Awaitable[None]:
    """A refit still running stops with the worker (it resumes on the next start)."""
    return _nightly.stop() if _nightly is not None else asyncio.sleep(0)


# mode types handlers with an unbound TypeVar that no function satisfies under mypy.
app.on_before_shutdown.connect(_stop_nightly)  # type: ignore[arg-type]


@app.timer(interval=6 * 3600.0)
async def roll_partitions() -> None:
    try:
        await asyncio.to_thread(ensure_partitions, settings.database_url)
    except Exception:
        log.exception("rolling partitions forward failed; will retry")


def run_worker(loglevel: str = "warn") -> None:
    """Run the worker in this process until it is told to stop."""
    worker = faust.Worker(app, loglevel=loglevel)
    # Faust's terminal spinner lowers the root logger to DEBUG so it can spin on every record;
    # every debug call in aiokafka and Faust then builds a record, a tenth of the worker's CPU.
    worker.spinner = None
    worker.execute_from_commandline()
