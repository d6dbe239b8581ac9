"""Liveness, readiness and metrics endpoints."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from litestar import Controller, Response, get
from litestar.datastructures import State
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from connectors.db import alerts, dead_letters, inbox, plans, reconciliations
from connectors.kafka.admin import broker_reachable
from web import metrics
from web.shared_reads import SharedRead

_BROKER_CHECK_TTL_S = 2.0
_BROKER_CHECK_TIMEOUT_S = 2.0
_PIPELINE_CHECK_TTL_S = 1.0
# How long a probe or scrape waits for the database: under common probe timeouts (1-5 s).
PROBE_WAIT_S = 2.0
T = TypeVar("T")


class HealthController(Controller):
    @get("/healthz")
    async def healthz(self) -> dict:
        return {"status": "ok"}

    @get("/readyz")
    async def readyz(self, state: State) -> Response:
        pipeline = await _pipeline(state)
        stalled = pipeline is not None and pipeline.backlog.stalled(state.settings.stall_seconds)
        checks = {
            "database": pipeline is not None,
            "kafka": await _broker_ok(state),
            # Read from the database: without it, unknown (null), not "stalled".
            "pipeline": None if pipeline is None else not stalled,
        }
        ready = all(value is True for value in checks.values())
        body: dict = {"ready": ready, "checks": checks}
        if pipeline is not None:
            body["oldest_unapplied_webhook_seconds"] = round(pipeline.backlog.oldest_s, 1)
            body["last_progress_seconds"] = {
                name: None if stage.idle_s is None else round(stage.idle_s, 1)
                for name, stage in (
                    ("normalise", pipeline.backlog.normalise),
                    ("apply", pipeline.backlog.apply),
                )
            }
            body["stall_after_seconds"] = state.settings.stall_seconds
        return Response(body, status_code=200 if ready else 503)

    @get("/metrics", media_type=CONTENT_TYPE_LATEST)
    async def metrics_text(self, state: State) -> Response:
        # Side by side: with the database hung each waits out its own PROBE_WAIT_S.
        pipeline, _, _ = await asyncio.gather(
            _pipeline(state), _reconciliation(state), _alert_delivery(state)
        )
        if pipeline is not None:
            metrics.oldest_unapplied.set(pipeline.backlog.oldest_s)
            for stage in ("ingress", "normalise", "apply", "backfill"):
                metrics.dead_letters.labels(stage=stage).set(pipeline.dead_letters.get(stage, 0))
            metrics.plan_failures.set(pipeline.plan_failures)
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)


@dataclass(frozen=True)
class _Pipeline:
    backlog: inbox.Backlog
    dead_letters: dict[str, int]
    plan_failures: int
    read_at: float


async def _pipeline(state: State) -> _Pipeline | None:
    """How far behind the worker is, measured in PostgreSQL (None: the database is away).
    Cached for a second: scrapes and probes must not become load of their own."""
    cached: _Pipeline | None = state.get("pipeline_check")
    if cached is not None and time.monotonic() - cached.read_at < _PIPELINE_CHECK_TTL_S:
        return cached

    async def read() -> _Pipeline:
        async with state.pool.connection() as conn:
            behind = await inbox.backlog(conn)
            open_letters = await dead_letters.open_counts(conn)
            unplanned = await plans.failure_count(conn)
            await conn.commit()
        return _Pipeline(behind, open_letters, unplanned, time.monotonic())

    try:
        state.pipeline_check = await _shared(state, "pipeline_read", read)()
    except Exception:
        return None
    return state.pipeline_check


def _shared(state: State, name: str, read: Callable[[], Awaitable[T]]) -> SharedRead[T]:
    """The app's one shared run of ``read`` (see :mod:`web.shared_reads`): probes answer
    within PROBE_WAIT_S even while the database hangs, and do not pile reads up on it."""
    shared: SharedRead[T] | None = state.get(name)
    if shared is None:
        shared = SharedRead(read, PROBE_WAIT_S)
        setattr(state, name, shared)
    return shared


async def _reconciliation(state: State) -> None:
    """Corrections reconciliation made (how often webhooks were missed) and how long ago the
    shop longest without a successful pass had one."""

    async def read() -> tuple[dict[str, int], float | None]:
        async with state.pool.connection() as conn:
            counts = await reconciliations.correction_counts(conn)
            age = await reconciliations.oldest_pass_age(conn)
            await conn.commit()
        return counts, age

    try:
        counts, age = await _shared(state, "reconciliation_read", read)()
    except Exception:
        return  # the database is away: /readyz says so; the last values stay
    for kind in reconciliations.KINDS:
        metrics.reconciliation_corrections.labels(kind=kind).set(counts.get(kind, 0))
    metrics.reconciliation_age.set(age if age is not None else 0)


async def _alert_delivery(state: State) -> None:
    """Alert emails by state and how long the oldest unsent one and the oldest delivery not
    yet in an email have waited: a stuck sender or a refusing mail server shows here."""

    async def read() -> dict[str, Any]:
        async with state.pool.connection() as conn:
            counts = await alerts.delivery_counts(conn)
            await conn.commit()
        return counts

    try:
        counts = await _shared(state, "alert_delivery_read", read)()
    except Exception:
        return  # the database is away: /readyz says so; the last values stay
    for email_state in ("pending", "retrying", "failed", "sent"):
        metrics.alert_emails.labels(state=email_state).set(counts[email_state])
    metrics.alert_email_oldest_unsent.set(counts["oldest_unsent_s"])
    metrics.alert_oldest_ungrouped.set(counts["oldest_ungrouped_s"])


async def _broker_ok(state: State) -> bool:
    """Whether the broker answered a metadata request recently.

    Probing opens a connection, so answers are cached briefly and only one probe runs at a time;
    a probe that cannot finish in time counts as "not ready" rather than stalling the caller.
    """
    checked_at, ok = state.get("broker_check", (float("-inf"), False))
    if time.monotonic() - checked_at <= _BROKER_CHECK_TTL_S:
        return ok
    probe = state.get("broker_probe")
    if probe is None or probe.done():
        probe = asyncio.ensure_future(
            asyncio.to_thread(broker_reachable, state.settings.bootstrap_servers)
        )
        state.broker_probe = probe
    try:
        ok = await asyncio.wait_for(asyncio.shield(probe), _BROKER_CHECK_TIMEOUT_S)
    except TimeoutError:
        ok = False
    state.broker_check = (time.monotonic(), ok)
    return ok
