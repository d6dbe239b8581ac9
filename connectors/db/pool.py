"""The async psycopg connection pool shared by a process."""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

# Pool connections return rows as dicts.
DictConnection = AsyncConnection[dict[str, Any]]


async def open_pool(
    database_url: str, *, min_size: int = 1, max_size: int = 8, wait: bool = True
) -> AsyncConnectionPool[DictConnection]:
    """A pool of dict-row connections; with ``wait``, once the first connection is made (30 s
    at most), else at once, connecting in the background."""
    pool = AsyncConnectionPool[DictConnection](
        database_url,
        connection_class=DictConnection,
        min_size=min_size,
        max_size=max_size,
        kwargs={"row_factory": dict_row, "autocommit": False},
        open=False,
    )
    await pool.open(wait=wait, timeout=30)
    return pool
