"""The ``normalise_webhooks`` agent: raw webhooks → per-SKU events on ``stockpulse.sku-events``.

Before the events are produced, the inbox notes what each webhook became (an event applied
before its note exists would leave the note behind for ever), and a webhook that can never
become events goes to dead letters instead of stalling the partition. The splitting itself is
pure: :mod:`streams.normalise`.
"""

from __future__ import annotations

import logging
from functools import partial

import faust

from connectors.db import dead_letters, inbox
from connectors.kafka.topics import WebhookEnvelope, dumps
from streams.context import BATCH_MAX, BATCH_WITHIN_S, WorkerContext, send_all
from streams.normalise import normalise
from streams.poison import retrying

log = logging.getLogger("stockpulse.worker")

Unusable = tuple[WebhookEnvelope | bytes, str]


def register(app: faust.App, ctx: WorkerContext) -> None:
    @app.agent(ctx.topics.raw_webhooks)
    async def normalise_webhooks(stream: faust.StreamT) -> None:
        async for batch in stream.take(BATCH_MAX, within=BATCH_WITHIN_S):
            messages: list[tuple[bytes, bytes]] = []
            notes: list[tuple[int, int]] = []
            normalised: list[int] = []
            unusable: list[Unusable] = []
            for raw in batch:
                try:
                    envelope = WebhookEnvelope.model_validate_json(raw)
                except ValueError as exc:
                    unusable.append((raw, f"unreadable envelope: {exc}"))
                    continue
                try:
                    events = normalise(envelope)
                except Exception as exc:  # pure code: whatever it raises, this message caused
                    unusable.append((envelope, f"{type(exc).__name__}: {exc}"))
                    events = []
                if envelope.delivery_id is not None:
                    normalised.append(envelope.delivery_id)
                    notes.extend((envelope.delivery_id, event.seq) for _, event in events)
                messages.extend((key, dumps(event)) for key, event in events)
            if notes or normalised or unusable:
                await retrying(
                    "noting normalised webhooks",
                    partial(_note_normalised, ctx, notes, normalised, unusable),
                )
                await ctx.note_progress("normalise")
            await retrying(
                "producing sku events", partial(send_all, ctx.topics.sku_events, messages)
            )


async def _note_normalised(
    ctx: WorkerContext,
    notes: list[tuple[int, int]],
    normalised: list[int],
    unusable: list[Unusable],
) -> None:
    """Note in the inbox what each webhook became, and set aside what it cannot become."""
    async with ctx.connection() as conn, conn.transaction():
        await inbox.mark_normalised(conn, normalised, notes)
        for envelope, reason in unusable:
            log.error("dead-lettering an unusable webhook: %s", reason)
            if isinstance(envelope, WebhookEnvelope):
                shop, event_id = envelope.shop, envelope.event_id
                data = envelope.model_dump(mode="json")
            else:
                shop, event_id = "", ""
                data = {"raw": envelope.decode("utf-8", "replace")[:100_000].replace("\x00", "")}
            await dead_letters.record(
                conn,
                stage="normalise",
                shop=shop,
                event_id=event_id,
                kind="webhook",
                topic=envelope.topic if isinstance(envelope, WebhookEnvelope) else None,
                data=data,
                error=reason,
            )
