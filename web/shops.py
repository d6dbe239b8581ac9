"""Which shops are installed, as a cached set so the ingress does not query per request."""

from __future__ import annotations

import time

from psycopg_pool import AsyncConnectionPool

from connectors.db.queries import known_shops

# A miss triggers a reload at most this often, so a flood of unknown shops cannot hammer the DB.
_MISS_RELOAD_INTERVAL_S = 1.0


class ShopDirectory:
    def __init__(self, pool: AsyncConnectionPool, refresh_s: float) -> None:
        self._pool = pool
        self._refresh_s = refresh_s
        self._shops: set[str] = set()
        self._loaded_at = float("-inf")

    async def _reload(self) -> None:
        async with self._pool.connection() as conn:
            self._shops = await known_shops(conn)
        self._loaded_at = time.monotonic()

    async def is_installed(self, shop: str) -> bool:
        age = time.monotonic() - self._loaded_at
        if age > self._refresh_s or (shop not in self._shops and age > _MISS_RELOAD_INTERVAL_S):
            await self._reload()
        return shop in self._shops
