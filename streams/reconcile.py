"""Reconciliation: compare a connected shop with Shopify and correct what webhooks left wrong.

Webhooks get lost (Shopify gives up after its retries; an app may be down longer) and arrive
late. So every hour (``RECONCILE_INTERVAL_S``) the worker exports from Shopify the shop's
catalogue with every stock level, and the orders updated since a little before the last pass,
and applies them through the normal write path, the same as the backfill
(:mod:`streams.exports`). The write path's rules make that safe: a level or order we already
have at Shopify's version changes nothing, one Shopify holds newer replaces ours, a missing
one is added. Each change a pass makes is recorded with what it was, what it became and the
webhook that should have told us (``reconciliation_corrections``), and counted in /metrics.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from psycopg_pool import AsyncConnectionPool

from connectors.db import dead_letters, ledger, reconciliations, shops
from connectors.db.pool import DictConnection
from connectors.kafka.topics import SkuEvent
from connectors.shopify.admin import AdminClient
from connectors.shopify.shop_details import shop_details
from streams import exports
from streams.replay import replay

log = logging.getLogger("stockpulse.reconcile")


@dataclass
class ReconcileReport:
    shop: str
    reconciliation_id: int
    levels: int = 0
    orders: int = 0
    # Rows another shop held under this shop's ids, taken back (connectors.db.ledger.reclaim),
    # and the shop's dead letters that then replayed.
    reclaimed: int = 0
    replayed: int = 0
    # As committed (a batch that poison isolation retried recorded its corrections once).
    corrections: list[dict[str, Any]] = field(default_factory=list)


def _recording(report: ReconcileReport) -> exports.ApplyBatch:
    """Apply a batch and record, in the same transaction, every difference it made."""
    shop, reconciliation_id = report.shop, report.reconciliation_id

    async def apply(conn: DictConnection, events: Sequence[SkuEvent]) -> None:
        line_ids = [e.data["line_item_id"] for e in events if e.kind == "sale_line"]
        line_ids += [e.data["line_item_id"] for e in events if e.kind == "refund_line"]
        levels = [
            (e.data["inventory_item_id"], e.data["location_id"])
            for e in events
            if e.kind in ("stock", "level_gone")
        ]
        variants = [e.data["variant_id"] for e in events if e.kind in ("variant", "variant_gone")]
        before = await reconciliations.snapshot(conn, shop, line_ids, levels, variants)
        # Counted even if the batch is retried: it only says whether to replay letters.
        report.reclaimed += await ledger.reclaim(conn, shop, events)
        await ledger.apply_events(conn, events)
        after = await reconciliations.snapshot(conn, shop, line_ids, levels, variants)
        found = reconciliations.differences(before, after)
        await reconciliations.record(conn, reconciliation_id, shop, found)

    return apply


async def reconcile_shop(
    pool: AsyncConnectionPool[DictConnection],
    client: AdminClient,
    http: httpx.AsyncClient,
    shop: str,
    reconciliation_id: int,
) -> ReconcileReport:
    """One pass over ``shop`` (claimed as ``reconciliation_id``, see
    :func:`connectors.db.reconciliations.claim`)."""
    report = ReconcileReport(shop, reconciliation_id)
    async with pool.connection() as conn:
        claimed = await reconciliations.get(conn, reconciliation_id)
        await conn.commit()
    if claimed is None or claimed["status"] != "running":
        raise LookupError(f"reconciliation {reconciliation_id} is not running")
    apply = _recording(report)
    prefix = f"reconcile:{reconciliation_id}:"
    try:
        found = await shop_details(client)
        async with pool.connection() as conn, conn.transaction():
            await shops.sync_settings(
                conn,
                shop,
                name=found.name,
                timezone=found.timezone,
                currency=found.currency,
            )
        await exports.read_locations(pool, client, shop)
        catalogue = await exports.read_catalogue(
            pool, client, http, shop, event_prefix=prefix, apply=apply
        )
        report.levels = catalogue.events - catalogue.roots
        since = reconciliations.since_text(claimed["orders_since"])
        orders = await exports.read_orders(
            pool, client, http, shop, f"updated_at:>='{since}'", event_prefix=prefix, apply=apply
        )
        report.orders = orders.roots
        async with pool.connection() as conn, conn.transaction():
            await reconciliations.finish(
                conn, reconciliation_id, levels=report.levels, orders=report.orders
            )
            report.corrections = await reconciliations.corrections(
                conn, shop, limit=1_000_000, reconciliation_id=reconciliation_id
            )
    except BaseException as exc:
        async with pool.connection() as conn, conn.transaction():
            await reconciliations.finish(
                conn, reconciliation_id, error=f"{type(exc).__name__}: {exc}"[:2000]
            )
        raise
    if report.reclaimed:
        report.replayed = await _replay_displaced(pool, shop)
    if report.corrections:
        log.warning(
            "reconciliation %s of %s corrected %d thing(s) webhooks left wrong",
            reconciliation_id,
            shop,
            len(report.corrections),
        )
    return report


async def _replay_displaced(pool: AsyncConnectionPool[DictConnection], shop: str) -> int:
    """Replay the shop's webhooks that another shop's rows had kept out, now those are gone
    (what the pass read covers its catalogue, and its orders only since the last pass)."""
    async with pool.connection() as conn:
        letters = await dead_letters.listing(conn, shop=shop, limit=10_000)
        displaced = [
            r["id"]
            for r in letters
            if r["stage"] == "apply" and "belongs to another shop" in (r["error"] or "")
        ]
        results = await replay(conn, sorted(displaced)) if displaced else []
    done = sum(r.ok for r in results)
    if results:
        log.warning("%s: replayed %d of %d displaced dead letters", shop, done, len(results))
    return done


class PassRunning(RuntimeError):
    """Another process is reconciling the shop."""


async def run_reconciliation(shop: str) -> ReconcileReport:
    """A pass over a connected shop, as the CLI and the worker run it. Raises
    :class:`PassRunning` when another process is reconciling the shop."""
    from connectors.crypto import Keyring
    from connectors.db.pool import open_pool
    from connectors.settings import get_settings
    from connectors.shopify.tokens import admin_client

    settings = get_settings()
    keyring = Keyring.parse(settings.stockpulse_encryption_keys)
    pool = await open_pool(settings.database_url, max_size=4)
    try:
        # Held for the whole pass: while this session lives the pass counts as running, and
        # once it is gone (the process killed) the next pass or the worker finds it abandoned.
        async with pool.connection() as holder:
            # In a transaction of its own, which the lock outlives: left open, it would hold
            # back vacuum for the whole pass.
            async with holder.transaction():
                if not await reconciliations.take_pass_lock(holder, shop):
                    raise PassRunning(f"a reconciliation of {shop} is running already")
            try:
                async with holder.transaction():
                    await reconciliations.abandon_orphans(
                        holder, "its process stopped during the pass", shop=shop
                    )
                    reconciliation_id = await reconciliations.claim(holder, shop)
                assert reconciliation_id is not None  # every earlier pass was ended above
                async with httpx.AsyncClient(timeout=60) as http:
                    try:
                        client = await admin_client(
                            pool,
                            keyring,
                            http,
                            shop,
                            settings.shopify_admin_url,
                            settings.shopify_api_version,
                        )
                    except BaseException as exc:
                        # Recorded like any failed pass (a key dropped from the keyring, the
                        # shop disconnected): the shop then waits its interval, not 30 s.
                        async with pool.connection() as conn, conn.transaction():
                            await reconciliations.finish(
                                conn, reconciliation_id, error=f"{type(exc).__name__}: {exc}"
                            )
                        raise
                    return await reconcile_shop(pool, client, http, shop, reconciliation_id)
            finally:
                async with holder.transaction():
                    await reconciliations.release_pass_lock(holder, shop)
    finally:
        await pool.close()


# The worker's child says "another process has this shop" so, not as a failure.
EXIT_BUSY = 75  # EX_TEMPFAIL


def main() -> None:
    """``python -m streams.reconcile --shop S``: how the worker runs a pass, in a child
    process of its own."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="python -m streams.reconcile")
    parser.add_argument("--shop", required=True)
    args = parser.parse_args()
    try:
        report = asyncio.run(run_reconciliation(args.shop))
    except PassRunning as exc:
        print(exc, flush=True)
        sys.exit(EXIT_BUSY)
    print(
        f"reconciled {args.shop}: {report.levels} stock levels and {report.orders} orders"
        f" checked, {len(report.corrections)} corrected",
        flush=True,
    )


if __name__ == "__main__":
    main()
