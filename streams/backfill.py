"""A shop's order history, read from a GraphQL bulk export and written through the same rules
and idempotency keys as live webhooks.

Each exported order becomes the ``Order`` of an ``orders/updated`` webhook and goes through
:func:`streams.normalise.normalise` and :func:`connectors.db.ledger.apply_events`: line item
ids key every line, the order's ``updatedAt`` versions it, ``currentQuantity`` is what it holds.
So a backfill running while webhooks for the same orders arrive, or run twice, or resumed after
a crash, counts every unit once. Batches are committed as they go; a resumed run skips the
orders of the same export it already applied. An order or line that can never be applied is
set aside in dead letters, as live ones are.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import httpx
from psycopg_pool import AsyncConnectionPool

from connectors.db import backfills, dead_letters, ledger
from connectors.db.pool import DictConnection
from connectors.kafka.topics import SkuEvent, WebhookEnvelope
from connectors.shopify import bulk
from connectors.shopify.admin import AdminClient
from connectors.shopify.payloads import BulkLineItem, BulkOrder
from streams import poison
from streams.normalise import normalise

log = logging.getLogger("stockpulse.backfill")

BATCH_LINES = 2000
ORDERS_EXPORT = """{{ orders(query: "created_at:>={since}") {{ edges {{ node {{
  id createdAt updatedAt cancelledAt test
  lineItems {{ edges {{ node {{
    id quantity currentQuantity sku name variant {{ id }} product {{ id }}
    originalUnitPriceSet {{ shopMoney {{ amount }} }}
  }} }} }}
}} }} }} }}"""

Progress = Callable[[int, int, int | None], None]  # orders, lines, orders in the export


@dataclass
class BackfillReport:
    shop: str
    orders: int = 0
    lines: int = 0
    skipped: int = 0  # already applied before a resume
    rejected: int = 0  # exported objects that are not usable orders (dead-lettered)


async def backfill_orders(
    pool: AsyncConnectionPool[DictConnection],
    client: AdminClient,
    http: httpx.AsyncClient,
    shop: str,
    since: date,
    progress: Progress | None = None,
) -> BackfillReport:
    async with pool.connection() as conn, conn.transaction():
        await backfills.start(conn, shop, since)
    report = BackfillReport(shop)
    try:
        operation = await bulk.run(client, ORDERS_EXPORT.format(since=since.isoformat()))
        async with pool.connection() as conn, conn.transaction():
            report.skipped = await backfills.reading(conn, shop, operation["id"])
        total = int(operation.get("objectCount") or 0) or None
        if operation.get("url"):
            await _read(pool, http, shop, operation["url"], report, total, progress)
        async with pool.connection() as conn, conn.transaction():
            await backfills.finish(conn, shop)
    except Exception as exc:
        async with pool.connection() as conn, conn.transaction():
            await backfills.finish(conn, shop, error=f"{type(exc).__name__}: {exc}")
        raise
    return report


async def _read(
    pool: AsyncConnectionPool[DictConnection],
    http: httpx.AsyncClient,
    shop: str,
    url: str,
    report: BackfillReport,
    total: int | None,
    progress: Progress | None,
) -> None:
    received = datetime.now(UTC).isoformat()
    events: list[SkuEvent] = []
    seen = 0
    async for root, children in bulk.stitched(http, url):
        seen += 1
        if seen <= report.skipped:
            continue
        try:
            # Parsed JSON: timestamps are still text, which only lax mode reads; ids and
            # quantities keep their strict types field by field.
            order = BulkOrder.model_validate(root, strict=False).as_order(
                [BulkLineItem.model_validate(child, strict=False) for child in children]
            )
        except ValueError as exc:
            report.rejected += 1
            async with pool.connection() as conn, conn.transaction():
                await dead_letters.record(
                    conn,
                    stage="backfill",
                    shop=shop,
                    event_id=str(root.get("id")),
                    kind="order",
                    data={"order": root, "lines": children},
                    error=str(exc)[:2000],
                )
            continue
        envelope = WebhookEnvelope(
            topic="orders/updated",
            shop=shop,
            event_id=f"backfill:{order.id}",
            webhook_id="",
            received_at=received,
            payload=order.model_dump(mode="json"),
        )
        events.extend(event for _, event in normalise(envelope))
        report.orders += 1
        if len(events) >= BATCH_LINES:
            await _apply(pool, shop, events, report, seen)
            events = []
            if progress:
                progress(seen, report.lines, total)
    await _apply(pool, shop, events, report, seen)
    if progress:
        progress(seen, report.lines, total)


async def _apply(
    pool: AsyncConnectionPool[DictConnection],
    shop: str,
    events: list[SkuEvent],
    report: BackfillReport,
    seen: int,
) -> None:
    async def apply(batch: Sequence[SkuEvent]) -> None:
        async with pool.connection() as conn, conn.transaction():
            await ledger.apply_events(conn, batch)

    async def set_aside(event: SkuEvent, error: BaseException) -> None:
        report.rejected += 1
        async with pool.connection() as conn, conn.transaction():
            await ledger.dead_letter(conn, event, error)

    # A line the database refuses (an id of another shop's) is set aside like a live one.
    if events:
        await poison.isolating(events, apply, set_aside)
    report.lines += len(events)
    # After the batch: a crash between the two re-applies it on resume, which changes nothing.
    async with pool.connection() as conn, conn.transaction():
        await backfills.progress(conn, shop, seen, report.lines)


async def run_backfill(shop: str, months: int, progress: bool) -> BackfillReport:
    """The backfill of a connected shop with its own credentials, as the CLI and the worker
    run it."""
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn
    from rich.progress import Progress as Bar

    from connectors.crypto import Keyring
    from connectors.db import credentials
    from connectors.db.pool import open_pool
    from connectors.settings import get_settings
    from connectors.shopify.tokens import ShopTokens

    settings = get_settings()
    keyring = Keyring.parse(settings.stockpulse_encryption_keys)
    since = (datetime.now(UTC) - timedelta(days=round(months * 30.44))).date()
    pool = await open_pool(settings.database_url, max_size=3)
    try:
        async with pool.connection() as conn:
            creds = await credentials.load(conn, keyring, shop)
        if creds is None:
            raise LookupError(f"{shop} is not connected (stockpulse connect)")
        async with httpx.AsyncClient(timeout=60) as http:
            tokens = ShopTokens(pool, keyring, http, shop, settings.shopify_admin_url)
            client = AdminClient(
                http,
                AdminClient.endpoint_for(
                    tokens.admin_url(creds), shop, settings.shopify_api_version
                ),
                tokens,
            )
            with Bar(
                TextColumn("backfilling {task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("orders, {task.fields[lines]:,} lines"),
                disable=not progress,
            ) as bar:
                task = bar.add_task(shop, total=None, lines=0)

                def moved(orders: int, lines: int, total: int | None) -> None:
                    bar.update(task, completed=orders, lines=lines)

                return await backfill_orders(pool, client, http, shop, since, moved)
    finally:
        await pool.close()


def main() -> None:
    """``python -m streams.backfill --shop S``: how the worker runs a requested backfill, then
    the shop's refit, in a child process of its own."""
    import argparse
    import asyncio
    import sys

    from streams.refit import EXIT_RUNNING_ELSEWHERE, refit_and_report

    parser = argparse.ArgumentParser(prog="python -m streams.backfill")
    parser.add_argument("--shop", required=True)
    parser.add_argument("--months", type=int, default=24)
    args = parser.parse_args()
    report = asyncio.run(run_backfill(args.shop, args.months, progress=False))
    print(f"backfilled {args.shop}: {report.orders} orders, {report.lines} lines", flush=True)
    code = refit_and_report([args.shop], progress=False)
    sys.exit(0 if code in (0, EXIT_RUNNING_ELSEWHERE) else code)


if __name__ == "__main__":
    main()
