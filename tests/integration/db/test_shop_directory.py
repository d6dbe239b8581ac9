"""The ingress's directory of installed shops against a database that hangs (a stopped server,
a full disk, a lock): a webhook gets its 503 within seconds, never waits for the database."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path

import pytest

from connectors.crypto import Keyring, generate_key
from connectors.db.migrate import migrate
from connectors.db.pool import open_pool
from connectors.db.shops import install_shop
from ops.embedded import LocalPostgres, free_port
from web.shops import WAIT_S, ShopDirectory


def _cluster(postmaster: int) -> list[int]:
    """The postmaster and every process it started (backends, background workers)."""
    found = [postmaster]
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                ppid = int((proc / "stat").read_text().rpartition(")")[2].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if ppid == postmaster:
                found.append(int(proc.name))
    return found


@pytest.mark.timeout(120)
async def test_a_hung_database_costs_a_webhook_seconds_not_minutes() -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="stockpulse-hang-"))
    postgres = LocalPostgres(data_dir / "pg", free_port(), durable=False)
    postgres.start()
    stopped: list[int] = []
    try:
        migrate(postgres.url())
        install_shop(postgres.url(), "hang.myshopify.com")
        pool = await open_pool(postgres.url(), max_size=2)
        directory = ShopDirectory(pool, 0.0, [b"secret"], Keyring.parse(generate_key()))
        assert await directory.cached_secrets("hang.myshopify.com") == [b"secret"]

        postmaster = postgres.pid
        assert postmaster is not None
        stopped = _cluster(postmaster)
        for pid in stopped:
            # A backend listed a moment ago may have exited since: nothing to pause then.
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
        for lookup in (directory.cached_secrets, directory.lookup_secrets):
            began = time.monotonic()
            with pytest.raises(TimeoutError):
                await lookup("other.myshopify.com")
            assert time.monotonic() - began < WAIT_S + 1.5

        for pid in stopped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        stopped = []
        await asyncio.sleep(0.1)
        assert await directory.cached_secrets("hang.myshopify.com") == [b"secret"]
        await pool.close()
    finally:
        for pid in stopped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        postgres.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
