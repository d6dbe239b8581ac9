"""Which shops are installed, cached so the ingress does not query per request."""

from __future__ import annotations

import time

from psycopg_pool import AsyncConnectionPool

from connectors.db.pool import DictConnection
from connectors.db.queries import known_shops, shop_installed


class ShopDirectory:
    """Installed shops; the whole set is reloaded every ``refresh_s`` so uninstalls take effect.

    A shop missing from the cache is looked up by primary key, so a shop installed a moment ago
    is served at once. Callers check the webhook's HMAC first, so only holders of the app secret
    can cause such lookups.
    """

    def __init__(self, pool: AsyncConnectionPool[DictConnection], refresh_s: float) -> None:
        self._pool = pool
        self._refresh_s = refresh_s
        self._shops: set[str] = set()
        self._loaded_at = float("-inf")

    async def is_installed(self, shop: str) -> bool:
        if time.monotonic() - self._loaded_at > self._refresh_s:
            async with self._pool.connection() as conn:
                self._shops = await known_shops(conn)
            self._loaded_at = time.monotonic()
        if shop in self._shops:
            return True
        async with self._pool.connection() as conn:
            installed = await shop_installed(conn, shop)
        if installed:
            self._shops.add(shop)
        return installed
