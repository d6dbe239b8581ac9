"""The worker reconciles every connected shop with Shopify every ``RECONCILE_INTERVAL_S``
(hourly by default), one shop at a time, each pass in a child process
(``python -m streams.reconcile``) so the live pipeline keeps its event loop."""

from __future__ import annotations

import asyncio
import logging
import shutil
import sys
from datetime import timedelta
from typing import TYPE_CHECKING

import faust

from connectors.db import reconciliations
from connectors.outages import log_failure
from streams.reconcile import EXIT_BUSY

if TYPE_CHECKING:
    from streams.context import WorkerContext

log = logging.getLogger("stockpulse.reconcile_schedule")

COMMAND = (
    *(("nice", "-n", "10") if shutil.which("nice") else ()),
    sys.executable,
    "-m",
    "streams.reconcile",
)


def register(app: faust.App, ctx: WorkerContext) -> None:
    settings = ctx.settings
    interval = timedelta(seconds=settings.reconcile_interval_s)
    running: list[asyncio.Task[None]] = []

    async def run_one(shop: str) -> None:
        try:
            child = await asyncio.create_subprocess_exec(*COMMAND, "--shop", shop)
            code = await child.wait()
            if code == EXIT_BUSY:
                log.info("%s is being reconciled by another process", shop)
            elif code != 0:
                log.error("the reconciliation of %s ended with exit code %s", shop, code)
                # The child marks its own failures; this covers one that died before it could.
                async with ctx.connection() as conn, conn.transaction():
                    await reconciliations.abandon_orphans(conn, f"exit code {code}", shop=shop)
        finally:
            running.clear()

    @app.timer(interval=settings.reconcile_check_s)
    async def start_due_reconciliation() -> None:
        try:
            async with ctx.connection() as conn, conn.transaction():
                # A pass whose process died (this worker's child, or a `stockpulse reconcile`
                # killed) would otherwise stand "running" and keep its shop from the next.
                if await reconciliations.abandon_orphans(
                    conn, "its process stopped during the pass"
                ):
                    log.warning("marked reconciliations whose process stopped as failed")
                if running or settings.reconcile_interval_s <= 0:
                    return
                due = await reconciliations.due(conn, interval)
        except Exception:
            log_failure(log, "looking for shops due a reconciliation failed; will retry")
            return
        if due:
            log.info("reconciling %s with Shopify", due[0])
            running.append(asyncio.create_task(run_one(due[0])))
