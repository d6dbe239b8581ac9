"""Which shops are installed (and which uninstalled ones are still held, for their privacy
webhooks), and which app secrets their webhooks verify with, cached so the ingress does not
query per request."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime

from psycopg_pool import AsyncConnectionPool

from connectors.crypto import Keyring
from connectors.db import credentials
from connectors.db.pool import DictConnection
from connectors.db.shops import held_shops, shop_held
from web.shared_reads import SharedRead, quietly, within

log = logging.getLogger(__name__)

# How long an uninstall this process accepted refuses its shop's webhooks before the database
# says so: the worker applies it within seconds, or once it is running again; one it ignores
# (older than a reinstall) stops refusing when its moment is found older than the install.
# A webhook accepted after this is still left out by the worker.
UNINSTALL_MARK_S = 900.0
# How long a webhook waits for the directory's database reads. Shopify gives up after about
# five seconds; a database that hangs (rather than refusing) must cost a 503, not a timeout.
WAIT_S = 3.0


class SecretUnavailable(Exception):
    """The shop's own app secret is sealed under a key this process lacks: its webhooks get
    503, and Shopify retries them once the process has the key."""


class ShopDirectory:
    """Installed shops; the whole set is reloaded every ``refresh_s`` so uninstalls take effect.

    Each lookup says whether an uninstalled shop whose data is still held counts (``held``):
    Shopify sends shop/redact 48 hours after the uninstall, and it must verify and apply then.

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
        self._shops: dict[str, datetime | None] = {}  # held shops: installed when (or None)
        self._uninstalled_here: dict[str, tuple[datetime, float]] = {}
        self._own_secrets: dict[str, bytes | None] = {}
        self._loaded_at = float("-inf")
        self._read_started_at = float("-inf")
        self._reloading = asyncio.Lock()
        # One reload at a time, shared by every request waiting for it.
        self._reload = SharedRead(self._read, WAIT_S)

    @property
    def app_secrets(self) -> list[bytes]:
        return self._app_secrets

    async def cached_secrets(self, shop: str, held: bool = False) -> list[bytes] | None:
        """The secrets ``shop``'s webhooks verify with, from the cache (None: not known, or
        uninstalled and not ``held``).

        Never reads one shop from the database: an unsigned request must not cost a query.
        """
        if time.monotonic() - self._loaded_at > self._refresh_s:
            await self._reload()
        return self._secrets_of(shop, held)

    async def _read(self) -> None:
        started_at = time.monotonic()
        async with self._pool.connection() as conn:
            self._shops = await held_shops(conn)
            secrets = await credentials.own_app_secrets(conn, self._keyring)
        for shop in sorted(s for s, secret in secrets.items() if secret is None):
            if self._own_secrets.get(shop, b"") is not None:  # said once, not every reload
                log.error(
                    "cannot open the app secret of %s: STOCKPULSE_ENCRYPTION_KEYS lacks its"
                    " key; its webhooks get 503 until this process has it",
                    shop,
                )
        self._own_secrets = secrets
        self._loaded_at = time.monotonic()
        self._read_started_at = started_at
        # Marks the database has caught up with (uninstalled, erased, or installed again since)
        # or that expired: kept, they would grow with every uninstall a process ever took.
        for shop in list(self._uninstalled_here):
            self._installed(shop)

    async def recent_secrets(
        self, shop: str, min_age_s: float = 1.0, held: bool = False
    ) -> list[bytes] | None:
        """Like :meth:`cached_secrets`, from a cache read after this call began, and at most
        one read every ``min_age_s`` whatever asks: a call within that of the last read waits
        for the next. (It took the last one, and a shop connected just after that read got
        401 for its first webhooks; CI saw it.)"""
        asked_at = time.monotonic()
        async with self._reloading:
            if self._read_started_at < asked_at:
                await asyncio.sleep(max(0.0, self._loaded_at + min_age_s - time.monotonic()))
                await self._reload()
        return self._secrets_of(shop, held)

    def note_uninstall(self, shop: str, moment: datetime) -> None:
        """``shop``'s uninstall, triggered at ``moment``, is accepted: its webhooks
        are refused from now on, not once the worker has applied it and the cache been
        reloaded (they were accepted, and applied, for up to three seconds)."""
        self._uninstalled_here[shop] = (moment, time.monotonic())

    def _installed(self, shop: str) -> bool:
        """Whether the cache holds ``shop`` installed and no uninstall of it is pending; drops
        a mark that no longer says anything."""
        mark = self._uninstalled_here.get(shop)
        installed_at = self._shops.get(shop)
        if mark is not None and (
            installed_at is None
            or installed_at > mark[0]
            or time.monotonic() - mark[1] > UNINSTALL_MARK_S
        ):
            del self._uninstalled_here[shop]  # applied, undone by a reinstall, or expired
            mark = None
        return installed_at is not None and mark is None

    def _secrets_of(self, shop: str, held: bool) -> list[bytes] | None:
        if shop not in self._shops or not (held or self._installed(shop)):
            return None
        if shop not in self._own_secrets:
            return self._app_secrets
        own = self._own_secrets[shop]
        if own is None:
            raise SecretUnavailable(shop)
        return [own]

    async def lookup_secrets(self, shop: str, held: bool = False) -> list[bytes] | None:
        """Like :meth:`cached_secrets` but asks the database on a miss, so a shop installed a
        moment ago is served at once. Callers check a signature first."""
        secrets = await self.cached_secrets(shop, held)
        if secrets is not None:
            return secrets
        installed = await within(WAIT_S, quietly(asyncio.create_task(self._held(shop))))
        if installed is None or not (installed or held):
            return None
        await self._reload()  # a shop connected a moment ago may have its own secret
        return self._secrets_of(shop, held)

    async def _held(self, shop: str) -> bool | None:
        async with self._pool.connection() as conn:
            return await shop_held(conn, shop)

    async def is_installed(self, shop: str) -> bool:
        return await self.lookup_secrets(shop) is not None
