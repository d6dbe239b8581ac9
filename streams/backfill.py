"""A shop's history and catalogue, read from Shopify's bulk exports when it is connected:
its locations, every variant with its stock at every location, then its orders (with line
items and refunds) for the last N months. All goes through the live write path and its
idempotency keys (see :mod:`streams.exports`), so a backfill running while webhooks for the
same orders arrive, or run twice, or resumed after a crash, counts every unit once.

Progress is kept in ``backfills`` as it goes (the dashboard shows it); a resumed run reads
the catalogue again (cheap, and idempotent) and skips the orders of the same export it had
already applied.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import httpx
from psycopg_pool import AsyncConnectionPool

from connectors.db import backfills
from connectors.db.pool import DictConnection
from connectors.shopify.admin import AdminClient
from streams import exports

log = logging.getLogger("stockpulse.backfill")

# What a phase has read, of how many export lines (None until Shopify says).
Progress = Callable[[str, int, int | None], None]


@dataclass
class BackfillReport:
    shop: str
    locations: int = 0
    variants: int = 0
    levels: int = 0
    orders: int = 0
    lines: int = 0  # sale and refund lines applied
    skipped: int = 0  # orders already applied before a resume
    rejected: int = 0  # exported objects or lines set aside in dead letters
    catalogue_seconds: float = 0.0  # locations and catalogue, export to applied
    orders_seconds: float = 0.0  # the order history, export to applied


async def backfill_shop(
    pool: AsyncConnectionPool[DictConnection],
    client: AdminClient,
    http: httpx.AsyncClient,
    shop: str,
    since: date,
    progress: Progress | None = None,
) -> BackfillReport:
    async with pool.connection() as conn, conn.transaction():
        row = await backfills.start(conn, shop, since)
    resume = (
        exports.Resume(
            row["operation_id"], row["export_url"], row["orders_applied"], row["objects_total"]
        )
        if row["export_url"] and row["orders_applied"]
        else None
    )
    report = BackfillReport(shop, skipped=resume.applied if resume else 0)

    def reporter(phase: str) -> exports.Progress:
        async def moved(read: int, total: int | None) -> None:
            async with pool.connection() as conn, conn.transaction():
                await backfills.progress(conn, shop, phase, read, total)
            if progress:
                progress(phase, read, total)

        return moved

    phase_began = time.perf_counter()
    try:
        report.locations = await exports.read_locations(pool, client, shop)
        async with pool.connection() as conn, conn.transaction():
            await backfills.progress(conn, shop, "catalogue", 0, None)
        catalogue = await exports.read_catalogue(
            pool, client, http, shop, event_prefix="backfill:", progress=reporter("catalogue")
        )
        report.variants = catalogue.roots
        report.levels = catalogue.events - catalogue.roots
        report.rejected += catalogue.rejected
        report.catalogue_seconds = time.perf_counter() - phase_began
        phase_began = time.perf_counter()

        async def started(operation_id: str, url: str | None) -> None:
            report.skipped = 0  # a new export: nothing of it applied yet
            async with pool.connection() as conn, conn.transaction():
                await backfills.reading(conn, shop, operation_id, url)

        orders_moved = reporter("orders")

        async def orders_progress(read: int, total: int | None) -> None:
            async with pool.connection() as conn, conn.transaction():
                await backfills.orders_applied(conn, shop, counts.roots, counts.events)
            await orders_moved(read, total)

        counts = exports.ExportCounts()
        orders = await exports.read_orders(
            pool,
            client,
            http,
            shop,
            f"created_at:>='{since.isoformat()}'",
            event_prefix="backfill:",
            resume=resume,
            started=started,
            progress=orders_progress,
            counts=counts,
        )
        report.orders = orders.roots - report.skipped
        report.lines = orders.events
        report.rejected += orders.rejected
        report.orders_seconds = time.perf_counter() - phase_began
        async with pool.connection() as conn, conn.transaction():
            await backfills.finish(conn, shop)
    except Exception as exc:
        async with pool.connection() as conn, conn.transaction():
            await backfills.finish(conn, shop, error=f"{type(exc).__name__}: {exc}"[:2000])
        raise
    return report


async def run_backfill(shop: str, months: int, progress: bool) -> BackfillReport:
    """The backfill of a connected shop with its own credentials, as the CLI and the worker
    run it."""
    from rich.progress import BarColumn, MofNCompleteColumn, TaskID, TextColumn
    from rich.progress import Progress as Bar

    from connectors.crypto import Keyring
    from connectors.db.pool import open_pool
    from connectors.settings import get_settings
    from connectors.shopify.tokens import admin_client

    settings = get_settings()
    keyring = Keyring.parse(settings.stockpulse_encryption_keys)
    since = (datetime.now(UTC) - timedelta(days=round(months * 30.44))).date()
    pool = await open_pool(settings.database_url, max_size=3)
    try:
        async with httpx.AsyncClient(timeout=60) as http:
            client = await admin_client(
                pool, keyring, http, shop, settings.shopify_admin_url, settings.shopify_api_version
            )
            with Bar(
                TextColumn("backfilling {task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("export lines"),
                disable=not progress,
            ) as bar:
                tasks: dict[str, TaskID] = {}

                def moved(phase: str, read: int, total: int | None) -> None:
                    if phase not in tasks:
                        tasks[phase] = bar.add_task(f"{shop} {phase}", total=total)
                    bar.update(tasks[phase], completed=read, total=total)

                return await backfill_shop(pool, client, http, shop, since, moved)
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
    print(
        f"backfilled {args.shop}: {report.variants} variants, {report.levels} stock levels,"
        f" {report.orders} orders, {report.lines} order and refund lines",
        flush=True,
    )
    code = refit_and_report([args.shop], progress=False)
    sys.exit(0 if code in (0, EXIT_RUNNING_ELSEWHERE) else code)


if __name__ == "__main__":
    main()
