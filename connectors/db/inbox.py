"""The webhook inbox: what makes a 200 durable whatever the broker keeps.

The ingress commits each accepted webhook here before it answers. The worker notes which
per-SKU events a webhook became (``inbox_pending``) and deletes each note in the transaction that
applies its event; a webhook is finished when it is normalised and no note is left. A relay
republishes unfinished webhooks with backoff (the broker may have lost them: Tansu's memory log
is gone after a restart), and finished rows are pruned.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from connectors.db.pool import DictConnection
from connectors.kafka.topics import WebhookEnvelope

# First republish after this long unfinished, then doubling per attempt up to the cap. Generous
# enough that a worker busy with a backlog is not handed copies of what it is about to read.
RELAY_AFTER_S = 20.0
RELAY_BACKOFF_CAP_S = 600.0
# Finished rows are kept this long so that a quick redelivery by Shopify is recognised.
KEEP_FINISHED_S = 60.0


@dataclass(frozen=True, slots=True)
class InboxRow:
    id: int
    shop: str
    topic: str
    event_id: str
    webhook_id: str
    triggered_at: str | None
    api_version: str | None
    payload: str
    received_at: datetime

    def envelope(self) -> WebhookEnvelope:
        """The ``shopify.webhooks`` message for this row (the same on every republish)."""
        return WebhookEnvelope(
            topic=self.topic,
            shop=self.shop,
            event_id=self.event_id,
            webhook_id=self.webhook_id,
            triggered_at=self.triggered_at,
            api_version=self.api_version,
            received_at=self.received_at.isoformat(),
            payload=json.loads(self.payload),
            delivery_id=self.id,
        )


_COLUMNS = "id, shop, topic, event_id, webhook_id, triggered_at, api_version, payload, received_at"


async def insert(
    conn: DictConnection, deliveries: Sequence[dict[str, Any]]
) -> list[InboxRow | None]:
    """Store deliveries (dicts of the inbox columns); a redelivery already stored comes back as
    None. One statement for the lot, so concurrent webhooks share one commit."""
    cur = await conn.execute(
        f"""
        WITH incoming AS (
            SELECT * FROM jsonb_to_recordset(%s) AS x(
                n int, shop text, topic text, event_id text, webhook_id text, signature text,
                triggered_at text, api_version text, payload text)
        ), stored AS (
            INSERT INTO webhook_inbox (shop, topic, event_id, webhook_id, signature,
                                       triggered_at, api_version, payload)
            SELECT shop, topic, event_id, webhook_id, signature, triggered_at, api_version,
                   payload
              FROM incoming ORDER BY n
            ON CONFLICT (shop, event_id, signature) DO NOTHING
            RETURNING {_COLUMNS}, signature
        )
        -- Copies of one delivery in one batch (Shopify retrying while the first waits): only
        -- the first is the one stored, the others are redeliveries.
        SELECT DISTINCT ON (s.id) i.n, s.* FROM stored s
          JOIN incoming i USING (shop, event_id, signature)
         ORDER BY s.id, i.n
        """,
        (Jsonb([{**d, "n": n} for n, d in enumerate(deliveries)]),),
    )
    out: list[InboxRow | None] = [None] * len(deliveries)
    for row in await cur.fetchall():
        n = row.pop("n")
        row.pop("signature")
        out[n] = InboxRow(**row)
    return out


async def mark_normalised(
    conn: DictConnection, inbox_ids: Sequence[int], pending: Sequence[tuple[int, int]]
) -> None:
    """Note the events webhooks became, before those events are produced: an event applied
    before its note exists would leave the note behind for ever."""
    if pending:
        await conn.execute(
            "INSERT INTO inbox_pending (inbox_id, seq)"
            " SELECT x.i, x.s FROM unnest(%s::bigint[], %s::int[]) AS x(i, s)"
            " WHERE EXISTS (SELECT 1 FROM webhook_inbox w WHERE w.id = x.i)"
            " ON CONFLICT DO NOTHING",
            ([i for i, _ in pending], [s for _, s in pending]),
        )
    if inbox_ids:
        await conn.execute(
            "UPDATE webhook_inbox SET normalised_at = now()"
            " WHERE id = ANY(%s) AND normalised_at IS NULL",
            (list(inbox_ids),),
        )


async def mark_applied(conn: DictConnection, done: Sequence[tuple[int, int]]) -> None:
    """Inside the transaction that applied (or dead-lettered) these events."""
    if done:
        await conn.execute(
            "DELETE FROM inbox_pending WHERE (inbox_id, seq) IN"
            " (SELECT * FROM unnest(%s::bigint[], %s::int[]))",
            ([i for i, _ in done], [s for _, s in done]),
        )


async def take_unfinished(
    conn: DictConnection, limit: int = 500, lost_before: datetime | None = None
) -> list[InboxRow]:
    """Unfinished webhooks due for a republish, locked for the caller's transaction and counted
    as republished when it commits. ``lost_before``: the broker kept nothing published before
    then (it restarted empty), so those are due now, whatever their backoff."""
    cur = await conn.execute(
        f"""
        WITH candidates AS (
            SELECT id FROM webhook_inbox WHERE normalised_at IS NULL
            UNION
            SELECT DISTINCT inbox_id FROM inbox_pending
        ), due AS (
            SELECT w.id FROM webhook_inbox w JOIN candidates c USING (id)
             WHERE coalesce(w.published_at, w.received_at) < now() - make_interval(
                       secs => least(%s * power(2, w.attempts), %s))
                OR coalesce(w.published_at, w.received_at) < %s::timestamptz
             ORDER BY w.id LIMIT %s
               FOR UPDATE OF w SKIP LOCKED
        )
        UPDATE webhook_inbox w SET attempts = w.attempts + 1, published_at = now()
          FROM due WHERE w.id = due.id
        RETURNING {", ".join("w." + c.strip() for c in _COLUMNS.split(","))}
        """,
        (RELAY_AFTER_S, RELAY_BACKOFF_CAP_S, lost_before, limit),
    )
    rows = [InboxRow(**r) for r in await cur.fetchall()]
    rows.sort(key=lambda r: r.id)
    return rows


async def prune(conn: DictConnection) -> int:
    """Delete finished rows past :data:`KEEP_FINISHED_S`, and notes of webhooks gone."""
    cur = await conn.execute(
        "WITH gone AS ("
        "  DELETE FROM webhook_inbox w"
        "   WHERE w.normalised_at < now() - make_interval(secs => %s)"
        "     AND NOT EXISTS (SELECT 1 FROM inbox_pending p WHERE p.inbox_id = w.id)"
        "  RETURNING w.shop, w.received_at),"
        " newest AS (SELECT shop, max(received_at) AS at FROM gone GROUP BY shop),"
        " noted AS ("
        "  UPDATE shops s SET last_webhook_at = greatest(s.last_webhook_at, n.at)"
        "    FROM newest n WHERE s.domain = n.shop)"
        " SELECT count(*) AS n FROM gone",
        (KEEP_FINISHED_S,),
    )
    row = await cur.fetchone()
    await conn.execute(
        "DELETE FROM inbox_pending p"
        " WHERE NOT EXISTS (SELECT 1 FROM webhook_inbox w WHERE w.id = p.inbox_id)"
    )
    return int(row["n"]) if row else 0


async def last_webhook_at(conn: DictConnection, shop: str) -> Any:
    """When the shop's newest webhook arrived (None: never)."""
    cur = await conn.execute(
        "SELECT greatest((SELECT last_webhook_at FROM shops WHERE domain = %(shop)s),"
        " (SELECT max(received_at) FROM webhook_inbox WHERE shop = %(shop)s)) AS at",
        {"shop": shop},
    )
    row = await cur.fetchone()
    return row["at"] if row else None


STAGES = ("normalise", "apply")


@dataclass(frozen=True, slots=True)
class StageBacklog:
    """Seconds since the oldest webhook waiting for a stage was received (0: none waits), and
    since the stage last moved one on (None: never)."""

    oldest_s: float
    idle_s: float | None

    def stalled(self, after_s: float) -> bool:
        """A webhook has waited ``after_s`` and the stage has moved nothing for as long. A
        backlog being worked off (after a restart, behind a burst) is behind, not stuck:
        judged by its age alone, a restarted deployment stayed unready until it had drained.

        >>> StageBacklog(120.0, 0.5).stalled(60), StageBacklog(120.0, 75.0).stalled(60)
        (False, True)
        >>> StageBacklog(120.0, None).stalled(60), StageBacklog(5.0, None).stalled(60)
        (True, False)
        """
        return self.oldest_s > after_s and (self.idle_s is None or self.idle_s > after_s)


@dataclass(frozen=True, slots=True)
class Backlog:
    """How far behind the worker is, by stage: a webhook waits to be normalised (split into
    per-SKU events), then for each of its events to be applied. Each stage is judged on its
    own, so one that moves cannot hide one that is stuck. Measured in PostgreSQL, not from
    broker offsets."""

    normalise: StageBacklog
    apply: StageBacklog

    @property
    def oldest_s(self) -> float:
        """Seconds since the oldest accepted webhook not yet applied was received."""
        return max(self.normalise.oldest_s, self.apply.oldest_s)

    def stalled(self, after_s: float) -> bool:
        return self.normalise.stalled(after_s) or self.apply.stalled(after_s)


async def backlog(conn: DictConnection) -> Backlog:
    cur = await conn.execute(
        """
        SELECT
          coalesce(extract(epoch FROM now() - (
            SELECT min(received_at) FROM webhook_inbox WHERE normalised_at IS NULL)), 0)::float8
            AS normalise_age,
          coalesce(extract(epoch FROM now() - (
            SELECT min(w.received_at)
              FROM (SELECT DISTINCT inbox_id FROM inbox_pending) p
              JOIN webhook_inbox w ON w.id = p.inbox_id)), 0)::float8 AS apply_age,
          extract(epoch FROM now() - (
            SELECT at FROM pipeline_progress WHERE stage = 'normalise'))::float8 AS normalise_idle,
          extract(epoch FROM now() - (
            SELECT at FROM pipeline_progress WHERE stage = 'apply'))::float8 AS apply_idle
        """
    )
    row = await cur.fetchone()
    assert row is not None  # one row, always

    def stage(name: str) -> StageBacklog:
        idle = row[f"{name}_idle"]
        return StageBacklog(
            max(float(row[f"{name}_age"]), 0.0), None if idle is None else max(float(idle), 0.0)
        )

    return Backlog(*(stage(name) for name in STAGES))


async def note_progress(conn: DictConnection, stage: str) -> None:
    """The worker moved webhooks on at ``stage`` (``normalise`` or ``apply``) just now."""
    await conn.execute(
        "INSERT INTO pipeline_progress (stage, at) VALUES (%s, now())"
        " ON CONFLICT (stage) DO UPDATE SET at = greatest(pipeline_progress.at, excluded.at)",
        (stage,),
    )


async def due_now(conn: DictConnection, inbox_id: int) -> None:
    """Make a row due for the relay's next round (a replayed dead letter)."""
    await conn.execute(
        "UPDATE webhook_inbox SET published_at = '-infinity' WHERE id = %s", (inbox_id,)
    )
