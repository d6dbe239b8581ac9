"""Dead letters: messages that can never succeed as they are, kept for an operator.

One bad message never blocks the ones behind it: it lands here with its reason and the
pipeline moves on. Stages: ``ingress`` (a signed body that fails the payload models; kept
without customer data), ``normalise`` (an envelope the worker cannot split) and ``apply`` (an
event the database refuses). ``stockpulse dead-letters list|replay`` reads them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from psycopg.types.json import Jsonb

from connectors.db.pool import DictConnection

Stage = Literal["ingress", "normalise", "apply", "backfill"]
MAX_ERROR_CHARS = 2000


async def record(
    conn: DictConnection,
    *,
    stage: Stage,
    shop: str,
    event_id: str,
    kind: str,
    data: Any,
    error: str,
    topic: str | None = None,
    replayable: bool = True,
) -> None:
    """Set a message aside, once: the same message failing again while its letter is open
    (a worker restarted before its offsets were committed) adds nothing (migration 0044).
    ``replayable`` is false where ``data`` is not the message itself (migration 0049)."""
    await conn.execute(
        "INSERT INTO dead_letters (stage, shop, event_id, kind, topic, data, error, replayable)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
        (stage, shop, event_id, kind, topic, Jsonb(data), error[:MAX_ERROR_CHARS], replayable),
    )


async def listing(
    conn: DictConnection, *, shop: str | None = None, include_replayed: bool = False, limit: int
) -> list[dict[str, Any]]:
    cur = await conn.execute(
        "SELECT id, stage, shop, event_id, kind, topic, error, created_at, replayed_at"
        " FROM dead_letters WHERE (%(shop)s::text IS NULL OR shop = %(shop)s)"
        " AND (%(all)s OR replayed_at IS NULL) ORDER BY id DESC LIMIT %(limit)s",
        {"shop": shop, "all": include_replayed, "limit": limit},
    )
    return list(await cur.fetchall())


async def take(conn: DictConnection, ids: Sequence[int]) -> list[dict[str, Any]]:
    """Open dead letters by id, locked until the caller's transaction ends."""
    cur = await conn.execute(
        "SELECT id, stage, shop, event_id, kind, topic, data, replayable FROM dead_letters"
        " WHERE id = ANY(%s) AND replayed_at IS NULL ORDER BY id FOR UPDATE",
        (list(ids),),
    )
    return list(await cur.fetchall())


async def mark_replayed(conn: DictConnection, dead_letter_id: int) -> None:
    await conn.execute(
        "UPDATE dead_letters SET replayed_at = now() WHERE id = %s", (dead_letter_id,)
    )


async def open_counts(conn: DictConnection) -> dict[str, int]:
    """Open dead letters per stage, for /metrics."""
    cur = await conn.execute(
        "SELECT stage, count(*) AS n FROM dead_letters WHERE replayed_at IS NULL GROUP BY stage"
    )
    return {r["stage"]: int(r["n"]) for r in await cur.fetchall()}
