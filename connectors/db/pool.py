"""The async psycopg connection pool shared by a process."""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

# Pool connections return rows as dicts.
DictConnection = AsyncConnection[dict[str, Any]]


async def open_pool(
    database_url: str, *, min_size: int = 1, max_size: int = 8
) -> AsyncConnectionPool[DictConnection]:
    pool = AsyncConnectionPool[DictConnection](
        database_url,
        connection_class=DictConnection,
        min_size=min_size,
        max_size=max_size,
        kwargs={"row_factory": dict_row, "autocommit": False},
        open=False,
    )
    await pool.open(wait=True, timeout=30)
    return pool
