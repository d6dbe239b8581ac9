"""Start the nightly refit when a shop's local clock passes its refit time.

The refit (:mod:`streams.refit`) runs in a child process: Prophet and its process pool stay
out of the worker (and its memory), and it does what ``stockpulse nightly`` does by hand.
One child at a time, covering every shop that is due, so shops never compete for the cores.
The run itself is resumable and takes a per-shop lock, so a second worker doing the same, or a
child killed with its worker, costs time but never a wrong or duplicate forecast.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import sys
import time
from collections.abc import Awaitable, Mapping, Sequence
from datetime import time as clock_time
from typing import TYPE_CHECKING, Any

import faust

from connectors.db import forecasts as db
from connectors.db.pool import DictConnection
from connectors.outages import log_failure
from streams.refit import EXIT_RUNNING_ELSEWHERE

if TYPE_CHECKING:
    from streams.context import WorkerContext

log = logging.getLogger("stockpulse.refit_schedule")

# Lowered priority: the refit is background work, and on a small machine it shares the cores with
# the live pipeline, whose latency the merchant sees.
REFIT_COMMAND = (
    *(("nice", "-n", "10") if shutil.which("nice") else ()),
    sys.executable,
    "-m",
    "streams.refit",
    "--no-progress",
    "--scheduled",
)
RETRY_AFTER_FAILURE_S = 15 * 60.0
RETRY_AFTER_BUSY_S = 5 * 60.0  # after EXIT_RUNNING_ELSEWHERE: the other process will commit


class RefitSchedule:
    def __init__(
        self,
        at: clock_time,
        processes: int = 0,
        command: Sequence[str] = REFIT_COMMAND,
        retry_after_failure_s: float = RETRY_AFTER_FAILURE_S,
        retry_after_busy_s: float = RETRY_AFTER_BUSY_S,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.at = at
        self.processes = processes
        self.command = tuple(command)
        self.retry_after_failure_s = retry_after_failure_s
        self.retry_after_busy_s = retry_after_busy_s
        self.env = dict(env) if env is not None else None  # None: the worker's own
        self._child: asyncio.subprocess.Process | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._not_before = 0.0

    @property
    def running(self) -> bool:
        """A child is running, or its exit is not yet accounted for."""
        return self._watcher is not None and not self._watcher.done()

    async def tick(self, conn: DictConnection) -> list[str]:
        """Start a refit for the shops that are due, unless one is still running or the last
        one failed recently; returns the shops started."""
        if self.running or time.monotonic() < self._not_before:
            return []
        shops = await db.shops_due_for_nightly(conn, self.at)
        await conn.commit()
        if not shops:
            return []
        args = [*self.command, *(a for shop in shops for a in ("--shop", shop))]
        if self.processes:
            args += ["--processes", str(self.processes)]
        self._child = await asyncio.create_subprocess_exec(*args, env=self.env)
        self._watcher = asyncio.get_running_loop().create_task(self._watch(self._child, shops))
        log.warning("started the nightly refit of %s", ", ".join(shops))
        return shops

    async def _watch(self, child: asyncio.subprocess.Process, shops: list[str]) -> None:
        code = await child.wait()
        if code == 0:
            log.warning("nightly refit of %s finished", ", ".join(shops))
        elif code == EXIT_RUNNING_ELSEWHERE:
            self._not_before = time.monotonic() + self.retry_after_busy_s
            log.warning("another process is refitting some of %s", ", ".join(shops))
        else:
            self._not_before = time.monotonic() + self.retry_after_failure_s
            log.error(
                "nightly refit of %s exited with %s; retrying in %.0f s",
                ", ".join(shops),
                code,
                self.retry_after_failure_s,
            )

    async def stop(self, timeout_s: float = 10.0) -> None:
        """Stop a running refit with the worker; it resumes at the next start."""
        child = self._child
        if child is None or child.returncode is not None:
            return
        child.terminate()
        try:
            await asyncio.wait_for(child.wait(), timeout_s)
        except TimeoutError:
            child.kill()
            await child.wait()


def register(app: faust.App, ctx: WorkerContext) -> None:
    """Look for due shops every ``STOCKPULSE_NIGHTLY_CHECK_S``; stop a running refit with the
    worker. Nothing to do when ``NIGHTLY_AT`` is off."""
    if ctx.settings.nightly_time is None:
        return
    schedule = RefitSchedule(ctx.settings.nightly_time, ctx.settings.nightly_processes)

    @app.timer(interval=ctx.settings.stockpulse_nightly_check_s)
    async def schedule_refit() -> None:
        """Start the nightly refit once each shop's local clock passes NIGHTLY_AT."""
        try:
            async with ctx.connection() as conn:
                await schedule.tick(conn)
        except Exception:
            log_failure(log, "scheduling the nightly refit failed; will retry")

    def stop_refit(sender: Any, *_: Any, signal: Any, **__: Any) -> Awaitable[None]:
        """A refit still running stops with the worker (it resumes on the next start)."""
        return schedule.stop()

    # mode types handlers with an unbound TypeVar that no function satisfies under mypy.
    app.on_before_shutdown.connect(stop_refit)  # type: ignore[arg-type]
