"""Keep the monthly partitions of the plain-PostgreSQL schema ahead of the clock.

A worker running for months rolls them forward (:func:`connectors.db.migrate.ensure_partitions`),
so new rows do not pile up in the default partition; a no-op on TimescaleDB.
"""

from __future__ import annotations

import asyncio
import logging

import faust

from connectors.db.migrate import ensure_partitions
from connectors.outages import log_failure
from streams.context import WorkerContext

log = logging.getLogger("stockpulse.worker")

ROLL_EVERY_S = 6 * 3600.0


def register(app: faust.App, ctx: WorkerContext) -> None:
    @app.timer(interval=ROLL_EVERY_S)
    async def roll_partitions() -> None:
        try:
            await asyncio.to_thread(ensure_partitions, ctx.settings.database_url)
        except Exception:
            log_failure(log, "rolling partitions forward failed; will retry")
