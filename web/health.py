"""Liveness, readiness and metrics endpoints."""

from __future__ import annotations

import asyncio
import time

from litestar import Controller, Response, get
from litestar.datastructures import State
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from connectors.kafka.admin import broker_reachable
from web import metrics

_BROKER_CHECK_TTL_S = 2.0
_BROKER_CHECK_TIMEOUT_S = 2.0


class HealthController(Controller):
    @get("/healthz")
    async def healthz(self) -> dict:
        return {"status": "ok"}

    @get("/readyz")
    async def readyz(self, state: State) -> Response:
        checks = {"database": await _database_ok(state), "kafka": await _broker_ok(state)}
        ready = all(checks.values())
        return Response({"ready": ready, "checks": checks}, status_code=200 if ready else 503)

    @get("/metrics", media_type=CONTENT_TYPE_LATEST)
    async def metrics_text(self) -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)


async def _database_ok(state: State) -> bool:
    try:
        async with asyncio.timeout(2):
            async with state.pool.connection() as conn:
                await conn.execute("SELECT 1")
        return True
    except Exception:
        return False


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
