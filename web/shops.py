"""Which shops are installed and which app secrets their webhooks verify with, cached so the
ingress does not query per request."""

from __future__ import annotations

import asyncio
import time

from psycopg_pool import AsyncConnectionPool

from connectors.crypto import Keyring
from connectors.db import credentials
from connectors.db.pool import DictConnection
from connectors.db.shops import known_shops, shop_installed
from web.shared_reads import SharedRead, quietly, within

# How long a webhook waits for the directory's database reads. Shopify gives up after about
# five seconds; a database that hangs (rather than refusing) must cost a 503, not a timeout.
WAIT_S = 3.0


class ShopDirectory:
    """Installed shops; the whole set is reloaded every ``refresh_s`` so uninstalls take effect.

    A webhook must verify with the secret of the app its shop is connected through: a shop
    connected with an app of its own (a merchant's Dev Dashboard app, or an older custom app's
    webhook secret) verifies with that secret only; every other shop with this deployment's
    app (``SHOPIFY_API_SECRET``, a list during rotation).
    """

    def __init__(
        self,
        pool: AsyncConnectionPool[DictConnection],
        refresh_s: float,
        app_secrets: list[bytes],
        keyring: Keyring,
    ) -> None:
        self._pool = pool
        self._refresh_s = refresh_s
        self._app_secrets = app_secrets
        self._keyring = keyring
        self._shops: set[str] = set()
        self._own_secrets: dict[str, bytes] = {}
        self._loaded_at = float("-inf")
        self._reloading = asyncio.Lock()
        # One reload at a time, shared by every request waiting for it.
        self._reload = SharedRead(self._read, WAIT_S)

    @property
    def app_secrets(self) -> list[bytes]:
        return self._app_secrets

    async def cached_secrets(self, shop: str) -> list[bytes] | None:
        """The secrets ``shop``'s webhooks verify with, from the cache (None: not known).

        Never reads one shop from the database: an unsigned request must not cost a query.
        """
        if time.monotonic() - self._loaded_at > self._refresh_s:
            await self._reload()
        return self._secrets_of(shop) if shop in self._shops else None

    async def _read(self) -> None:
        async with self._pool.connection() as conn:
            self._shops = await known_shops(conn)
            self._own_secrets = await credentials.own_app_secrets(conn, self._keyring)
        self._loaded_at = time.monotonic()

    async def recent_secrets(self, shop: str, min_age_s: float = 1.0) -> list[bytes] | None:
        """Like :meth:`cached_secrets`, reloading the cache first when it is older than
        ``min_age_s``: at most one query a second, whatever asks."""
        async with self._reloading:
            if time.monotonic() - self._loaded_at > min_age_s:
                await self._reload()
        return self._secrets_of(shop) if shop in self._shops else None

    def _secrets_of(self, shop: str) -> list[bytes]:
        own = self._own_secrets.get(shop)
        return [own] if own is not None else self._app_secrets

    async def lookup_secrets(self, shop: str) -> list[bytes] | None:
        """Like :meth:`cached_secrets` but asks the database on a miss, so a shop installed a
        moment ago is served at once. Callers check a signature first."""
        secrets = await self.cached_secrets(shop)
        if secrets is not None:
            return secrets
        installed = await within(WAIT_S, quietly(asyncio.create_task(self._installed(shop))))
        if not installed:
            return None
        await self._reload()  # a shop connected a moment ago may have its own secret
        return self._secrets_of(shop) if shop in self._shops else None

    async def _installed(self, shop: str) -> bool:
        async with self._pool.connection() as conn:
            return await shop_installed(conn, shop)

    async def is_installed(self, shop: str) -> bool:
        return await self.lookup_secrets(shop) is not None
