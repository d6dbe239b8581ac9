"""Open WebSocket feeds whose access has ended: a logout or an expired session, a revoked API
token, a member removed from the shop. A feed lives for hours, past all of these.

One query a period checks every open feed of the process, rather than each feed its own:
with a thousand feeds open, that is one query every ``WEBSOCKET_RECHECK_SECONDS`` instead of
three hundred a second competing with the updates the feeds carry (``bench feed``)."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from dataclasses import dataclass, field

from psycopg_pool import AsyncConnectionPool

from connectors.db import accounts
from connectors.db.pool import DictConnection
from connectors.outages import log_failure

log = logging.getLogger(__name__)


@dataclass(eq=False)
class FeedGrant:
    """What an open feed was allowed on: how its caller signed in, as whom, to which shop.
    ``ended`` is set once that no longer stands."""

    via: str  # "session" or "token"
    credential: bytes  # the digest of the session cookie or bearer token
    user_id: int
    shop: str
    ended: asyncio.Event = field(default_factory=asyncio.Event)


class FeedAccess:
    def __init__(self, pool: AsyncConnectionPool[DictConnection], every_s: float) -> None:
        self._pool = pool
        self._every_s = every_s
        self._open: set[FeedGrant] = set()
        self._per_user: Counter[int] = Counter()

    def watch(self, grant: FeedGrant, most_per_user: int | None = None) -> FeedGrant | None:
        """Watch ``grant``; None, and nothing watched, when its user already has
        ``most_per_user`` feeds open in this process."""
        if most_per_user is not None and self._per_user[grant.user_id] >= most_per_user:
            return None
        self._open.add(grant)
        self._per_user[grant.user_id] += 1
        return grant

    def forget(self, grant: FeedGrant) -> None:
        if grant in self._open:
            self._open.discard(grant)
            self._per_user[grant.user_id] -= 1
            if not self._per_user[grant.user_id]:
                del self._per_user[grant.user_id]

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._every_s)
            try:
                await self.check()
            except Exception:  # a bug must not stop every later check: feeds would outlive
                log_failure(log, "re-checking open feeds failed; trying again next time")

    async def check(self) -> None:
        """End the grants that no longer stand. While the database cannot say, feeds stay
        open: they carry nothing new then anyway."""
        grants = list(self._open)
        if not grants:
            return
        try:
            async with self._pool.connection() as conn:
                ended = await accounts.feeds_no_longer_allowed(
                    conn, [(g.via, g.credential, g.user_id, g.shop) for g in grants]
                )
                await conn.commit()
        except Exception:
            log.warning("could not re-check %d open feeds; keeping them open", len(grants))
            return
        for index in ended:
            grants[index].ended.set()
            self.forget(grants[index])
