"""The webhook inbox on its own: dedupe, progress notes, relay backoff, pruning, stall age."""

from __future__ import annotations

from datetime import UTC, datetime

from connectors.db import inbox
from connectors.db.pool import DictConnection
from tests.integration.db.test_ledger import _delivery, _notes


async def _age(conn: DictConnection, inbox_id: int, seconds: float) -> None:
    await conn.execute(
        "UPDATE webhook_inbox SET received_at = now() - make_interval(secs => %s) WHERE id = %s",
        (seconds, inbox_id),
    )
    await conn.commit()


async def test_a_redelivery_is_stored_once_and_a_reused_event_id_is_not_a_redelivery(
    conn: DictConnection, shop: str
) -> None:
    first = _delivery(shop, "same-event", signature="a")
    rows = await inbox.insert(conn, [first, first, _delivery(shop, "same-event", signature="b")])
    await conn.commit()
    assert rows[0] is not None and rows[2] is not None and rows[0].id != rows[2].id
    assert rows[1] is None  # a copy in the same batch is a redelivery, answered "duplicate"
    assert await inbox.insert(conn, [first]) == [None]
    await conn.commit()
    envelope = rows[0].envelope()
    assert envelope.delivery_id == rows[0].id and envelope.payload == {"id": 1}


async def test_unfinished_rows_are_republished_with_backoff_and_finished_ones_pruned(
    conn: DictConnection, shop: str
) -> None:
    (row,) = await inbox.insert(conn, [_delivery(shop)])
    assert row is not None
    await conn.commit()
    assert row.id not in {r.id for r in await inbox.take_unfinished(conn)}  # not due yet
    await conn.commit()
    await _age(conn, row.id, inbox.RELAY_AFTER_S + 1)
    assert row.id in {r.id for r in await inbox.take_unfinished(conn)}
    await conn.commit()
    # Republished just now: the next attempt waits twice as long.
    assert row.id not in {r.id for r in await inbox.take_unfinished(conn)}
    await conn.commit()
    assert (await inbox.backlog(conn)).oldest_s >= inbox.RELAY_AFTER_S

    await inbox.mark_normalised(conn, [row.id], [(row.id, 0)])
    await conn.commit()
    await inbox.mark_applied(conn, [(row.id, 0)])
    await conn.execute(
        "UPDATE webhook_inbox SET normalised_at = now() - interval '1 hour' WHERE id = %s",
        (row.id,),
    )
    await conn.commit()
    await inbox.prune(conn)
    await conn.commit()
    cur = await conn.execute("SELECT 1 FROM webhook_inbox WHERE id = %s", (row.id,))
    assert await cur.fetchone() is None
    assert await _notes(conn, row.id) == []


async def test_a_note_waiting_for_its_event_keeps_the_webhook_unfinished(
    conn: DictConnection, shop: str
) -> None:
    (row,) = await inbox.insert(conn, [_delivery(shop)])
    assert row is not None
    await inbox.mark_normalised(conn, [row.id], [(row.id, 0), (row.id, 1)])
    await inbox.mark_applied(conn, [(row.id, 0)])
    await conn.commit()
    await _age(conn, row.id, 3600)
    assert (await inbox.backlog(conn)).oldest_s >= 3600
    assert row.id in {r.id for r in await inbox.take_unfinished(conn)}
    await conn.commit()
    await inbox.mark_applied(conn, [(row.id, 1)])
    await conn.commit()
    assert row.id not in {r.id for r in await inbox.take_unfinished(conn)}
    await conn.commit()


async def test_after_the_broker_restarted_empty_everything_unfinished_before_is_due_at_once(
    conn: DictConnection, shop: str
) -> None:
    """A worker started beside a broker that forgot its log does not wait out the backoff for
    webhooks published before it started; those published since are left to the backoff."""
    (row,) = await inbox.insert(conn, [_delivery(shop)])
    assert row is not None
    await conn.commit()
    await _age(conn, row.id, 1)  # received (and published) a second ago: not due by backoff
    assert row.id not in {r.id for r in await inbox.take_unfinished(conn)}
    await conn.commit()
    started = datetime.now(UTC)
    assert row.id in {r.id for r in await inbox.take_unfinished(conn, lost_before=started)}
    await conn.commit()
    # Republished after the start: the new broker has it.
    assert row.id not in {r.id for r in await inbox.take_unfinished(conn, lost_before=started)}
    await conn.commit()


async def test_a_backlog_is_stalled_only_where_its_stage_has_stopped_moving(
    conn: DictConnection, shop: str
) -> None:
    """A stall is a backlog nothing moves: the age of the oldest webhook alone cannot tell it
    from one being worked off after a restart. Each stage is judged on its own."""
    (row,) = await inbox.insert(conn, [_delivery(shop)])
    assert row is not None
    await inbox.mark_normalised(conn, [row.id], [(row.id, 0)])
    await _age(conn, row.id, 3600)
    await inbox.note_progress(conn, "apply")
    await conn.execute(
        "UPDATE pipeline_progress SET at = now() - interval '2 hours' WHERE stage = 'apply'"
    )
    await inbox.note_progress(conn, "normalise")  # normalising moves; applying does not
    await conn.commit()
    behind = await inbox.backlog(conn)
    assert behind.apply.oldest_s >= 3600 and behind.oldest_s >= 3600
    assert behind.apply.idle_s is not None and behind.apply.idle_s >= 7200
    assert behind.normalise.idle_s is not None and behind.normalise.idle_s < 5
    assert behind.stalled(60) and behind.apply.stalled(60) and not behind.normalise.stalled(60)

    await inbox.note_progress(conn, "apply")  # worked off, if slowly: behind, not stalled
    await conn.commit()
    assert not (await inbox.backlog(conn)).stalled(60)
    # A worker whose clock is behind another's never moves the note back.
    await conn.execute(
        "UPDATE pipeline_progress SET at = now() + interval '1 minute' WHERE stage = 'apply'"
    )
    await inbox.note_progress(conn, "apply")
    await conn.commit()
    cur = await conn.execute(
        "SELECT at > now() AS ahead FROM pipeline_progress WHERE stage = 'apply'"
    )
    assert (await cur.fetchone())["ahead"]
    await conn.execute("UPDATE pipeline_progress SET at = now()")
    await inbox.mark_applied(conn, [(row.id, 0)])
    await conn.commit()
