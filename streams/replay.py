"""Replay dead letters once their cause is fixed (a bug in our code, a shop installed late).

Each letter goes back in at the stage it failed, through the same rules as live traffic: a
webhook body is validated again and committed to the inbox (the relay publishes it at once), an
envelope is split again, an event is applied again by the idempotent write path. A letter that
still fails stays open with the new reason shown; nothing is half-replayed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from connectors.db import dead_letters, inbox, ledger
from connectors.db.pool import DictConnection
from connectors.kafka.topics import SkuEvent, WebhookEnvelope
from connectors.shopify.payloads import dump_payload, parse_payload
from streams.normalise import normalise


@dataclass(frozen=True)
class Replayed:
    id: int
    ok: bool
    detail: str


async def replay(conn: DictConnection, ids: list[int]) -> list[Replayed]:
    """Replay open dead letters by id, each in a transaction of its own."""
    async with conn.transaction():
        letters = await dead_letters.take(conn, ids)
    out = []
    for letter in letters:
        try:
            async with conn.transaction():
                # Locked again: two operators replaying at once must not both succeed.
                if not await dead_letters.take(conn, [letter["id"]]):
                    continue
                detail = await _replay_one(conn, letter)
                await dead_letters.mark_replayed(conn, letter["id"])
            out.append(Replayed(letter["id"], True, detail))
        except Exception as exc:
            # The reason as a dead letter gives it, not the database's call stack.
            out.append(Replayed(letter["id"], False, ledger.describe(exc)))
    return out


async def _replay_one(conn: DictConnection, letter: dict[str, Any]) -> str:
    stage, data = letter["stage"], letter["data"]
    if stage == "apply":
        event = SkuEvent.model_validate(data).model_copy(update={"inbox_id": None})
        await ledger.apply_events(conn, [event])
        return "applied"
    if stage == "backfill":
        # An object of a bulk export: Shopify still has it, and the next backfill or
        # reconciliation reads it again through the same rules.
        raise ValueError(
            "an exported object: fix the cause, then run `stockpulse reconcile --shop"
            f" {letter['shop']}` (or `stockpulse backfill`) to read it again"
        )
    if not letter["replayable"]:
        raise ValueError(
            "the letter keeps a reading of the body Shopify sent, not the body (it was no JSON"
            " object, or could not be read with one meaning): run `stockpulse reconcile --shop"
            f" {letter['shop']}` to read the object's current state from Shopify"
        )
    if stage == "ingress":
        payload = dump_payload(parse_payload(letter["topic"], data))
        envelope = WebhookEnvelope(
            topic=letter["topic"],
            shop=letter["shop"],
            event_id=letter["event_id"],
            webhook_id="",
            received_at="",
            payload=payload,
        )
    else:
        envelope = WebhookEnvelope.model_validate(data)
        normalise(envelope)  # raises as it did, unless the cause is gone
    await _into_inbox(conn, letter["id"], envelope)
    return "back in the inbox"


async def _into_inbox(conn: DictConnection, letter_id: int, envelope: WebhookEnvelope) -> None:
    (row,) = await inbox.insert(
        conn,
        [
            {
                "shop": envelope.shop,
                "topic": envelope.topic,
                "event_id": envelope.event_id,
                "webhook_id": envelope.webhook_id,
                # Not Shopify's signature: marks the replay, and keeps it apart from the original.
                "signature": f"replay of dead letter {letter_id}",
                "triggered_at": envelope.triggered_at,
                "api_version": envelope.api_version,
                "payload": json.dumps(envelope.payload, separators=(",", ":")),
            }
        ],
    )
    if row is not None:
        await inbox.due_now(conn, row.id)
