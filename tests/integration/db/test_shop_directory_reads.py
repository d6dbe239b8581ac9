"""The ingress's directory of shops finds a shop connected just after its last read, and
reads at most once a second whatever asks."""

from __future__ import annotations

import asyncio
import time
import uuid

from connectors.crypto import Keyring, generate_key
from connectors.db.pool import open_pool
from connectors.db.shops import install_shop
from web.shared_reads import SharedRead
from web.shops import ShopDirectory


async def test_a_shop_connected_just_after_a_read_is_found_and_floods_cost_a_read_a_second(
    database_url: str,
) -> None:
    pool = await open_pool(database_url, max_size=2)
    try:
        directory = ShopDirectory(pool, 3600.0, [b"secret"], Keyring.parse(generate_key()))
        reads = 0
        read = directory._read

        async def counted() -> None:
            nonlocal reads
            reads += 1
            await read()

        directory._reload = SharedRead(counted, 3.0)
        new = f"n{uuid.uuid4().hex[:12]}.myshopify.com"
        assert await directory.recent_secrets(new) is None  # read now: not installed yet
        install_shop(database_url, new)
        # Within a second of that read: it used to answer from it, and the shop's first
        # webhooks got 401 (seen in CI).
        started = time.monotonic()
        found = await asyncio.gather(*(directory.recent_secrets(new) for _ in range(200)))
        assert all(secrets == [b"secret"] for secrets in found)
        assert reads == 2 and time.monotonic() - started < 2.0
        # A flood for shops nobody installed still costs one read a second, not one each.
        started = time.monotonic()
        for _ in range(3):
            await asyncio.gather(
                *(directory.recent_secrets(f"x{i}.myshopify.com") for i in range(100))
            )
        elapsed = time.monotonic() - started
        assert reads == 5 and elapsed >= 2.5, (reads, elapsed)
    finally:
        await pool.close()
