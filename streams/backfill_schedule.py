"""The worker runs requested backfills (an OAuth install asks for one), one at a time, each in
a child process (``python -m streams.backfill``) so the live pipeline keeps its event loop."""

from __future__ import annotations

import asyncio
import logging
import shutil
import sys
from typing import TYPE_CHECKING

import faust

from connectors.db import backfills
from connectors.outages import log_failure

if TYPE_CHECKING:
    from streams.context import WorkerContext

log = logging.getLogger("stockpulse.backfill_schedule")

CHECK_S = 5.0
COMMAND = (
    *(("nice", "-n", "10") if shutil.which("nice") else ()),
    sys.executable,
    "-m",
    "streams.backfill",
)


def register(app: faust.App, ctx: WorkerContext) -> None:
    running: dict[str, asyncio.Task[None]] = {}

    async def run_one(shop: str) -> None:
        child = await asyncio.create_subprocess_exec(*COMMAND, "--shop", shop)
        code = await child.wait()
        if code != 0:
            log.error("the backfill of %s ended with exit code %s", shop, code)
            async with ctx.connection() as conn, conn.transaction():
                await backfills.finish(conn, shop, error=f"exit code {code}")
        running.pop(shop, None)

    @app.task
    async def requeue_interrupted() -> None:
        async with ctx.connection() as conn, conn.transaction():
            if await backfills.requeue_interrupted(conn):
                log.warning("resuming backfills a stopped worker left running")

    @app.timer(interval=CHECK_S)
    async def start_requested_backfills() -> None:
        if running:
            return  # one at a time: a backfill is heavy, the live pipeline comes first
        try:
            async with ctx.connection() as conn, conn.transaction():
                shop = await backfills.take_pending(conn)
        except Exception:
            log_failure(log, "looking for requested backfills failed; will retry")
            return
        if shop is not None:
            log.warning("starting the backfill of %s", shop)
            running[shop] = asyncio.create_task(run_one(shop))
