"""The rows of a shop's CSV reports, read with server-side cursors.

Each report is one statement, so it reads one snapshot however long the download takes, and
rows come over in batches: a report of any length holds one batch in memory. Closing a report's
generator early (a download cut short) closes its cursor and transaction at once. The columns
and the CSV itself are the web layer's (``web/reports.py``).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from psycopg import AsyncServerCursor

from connectors.db.alerts import HistoryFilter, history_cursor
from connectors.db.pool import DictConnection

# The dashboard's own per-SKU query, so the reorder plan shows the figures the page shows.
# queries.py keeps it private for now; it streams here with a cursor instead of a list.
from connectors.db.queries import SKU_ROWS_SQL, SkuRow, sku_row

ROWS_PER_FETCH = 500
# A plan holds 90 days of forecast: about as much memory per batch as the other reports'.
PLANS_PER_FETCH = 50

# Shopify names the only variant of a single-variant product "Default Title"; the dashboard
# shows no variant title then, and neither does a report.
_INVENTORY = """
SELECT v.product_title, nullif(v.variant_title, 'Default Title') AS variant_title, v.sku,
       v.variant_id, l.location_id, loc.name AS location_name,
       CASE WHEN v.tracked THEN l.available END AS available, l.updated_at, v.tracked
  FROM variants v
  LEFT JOIN inventory_levels l
         ON l.shop = v.shop AND l.inventory_item_id = v.inventory_item_id
  LEFT JOIN locations loc ON loc.shop = l.shop AND loc.location_id = l.location_id
 WHERE v.shop = %(shop)s AND NOT v.deleted
 ORDER BY v.product_title NULLS LAST, v.variant_title, v.variant_id, l.location_id
"""

# One row per plan, sorted; its days are unnested here, in order, rather than sorting every
# day of every SKU in the database (which spills to disk for a large shop).
_FORECASTS = """
SELECT v.sku, p.variant_id, p.first_day, p.mean, p.lower, p.upper, p.method
  FROM sku_plans p
  JOIN variants v ON v.shop = p.shop AND v.variant_id = p.variant_id AND NOT v.deleted
 WHERE p.shop = %(shop)s
 ORDER BY v.product_title NULLS LAST, v.variant_title, p.variant_id
"""

# The plan's reorder point is the forecast demand over the lead time plus its safety stock,
# so their difference is that demand as the plan counted it (today's units still to sell, the
# lead time the plan was made with), not a new sum over today's settings.
_REORDER_PLAN = f"""
SELECT sku.*,
       round((p.reorder_point - p.safety_stock)::numeric, 1)::float8 AS lead_time_demand
  FROM ({SKU_ROWS_SQL}) sku
  JOIN variants v ON v.shop = %(shop)s AND v.variant_id = sku.variant_id
  LEFT JOIN sku_plans p ON p.shop = %(shop)s AND p.variant_id = sku.variant_id
 ORDER BY v.product_title NULLS LAST, v.variant_title, v.variant_id
"""


@dataclass(frozen=True)
class PlannedSku:
    """A SKU as the dashboard reads it, and the part of its plan only the report shows."""

    row: SkuRow
    lead_time_demand: float | None


async def inventory(conn: DictConnection, shop: str) -> AsyncGenerator[dict[str, Any], None]:
    """One row per variant and location: ``product_title``, ``variant_title``, ``sku``,
    ``variant_id``, ``location_id``, ``location_name``, ``available`` (None when untracked),
    ``updated_at`` (Shopify's, of the level) and ``tracked``. A variant with no recorded level
    comes once, with no location."""
    async with _cursor(conn, "stockpulse_report_inventory", _INVENTORY, {"shop": shop}) as rows:
        async for row in rows:
            yield row


async def forecasts(conn: DictConnection, shop: str) -> AsyncGenerator[dict[str, Any], None]:
    """One row per SKU and day of its latest forecast: ``sku``, ``variant_id``, ``day``
    (shop-local), ``mean``, ``lower`` and ``upper`` (the 80 % interval) and ``method``."""
    async with _cursor(
        conn, "stockpulse_report_forecasts", _FORECASTS, {"shop": shop}, PLANS_PER_FETCH
    ) as plans:
        async for plan in plans:
            days = zip(plan["mean"], plan["lower"], plan["upper"], strict=True)
            for offset, (mean, lower, upper) in enumerate(days):
                # Stored as float4, the forecaster's 2-decimal values come back as their
                # neighbours (3.140000104904175); rounded as the forecaster did, they are exact.
                yield {
                    "sku": plan["sku"],
                    "variant_id": plan["variant_id"],
                    "day": plan["first_day"] + timedelta(days=offset),
                    "mean": round(mean, 2),
                    "lower": round(lower, 2),
                    "upper": round(upper, 2),
                    "method": plan["method"],
                }


async def reorder_plan(conn: DictConnection, shop: str) -> AsyncGenerator[PlannedSku, None]:
    """Every SKU the dashboard lists, in its order, with the lead-time demand of its plan
    (None before its first forecast)."""
    params = {"shop": shop, "ids": None}
    async with _cursor(conn, "stockpulse_report_reorder_plan", _REORDER_PLAN, params) as rows:
        async for row in rows:
            yield PlannedSku(sku_row(row), row["lead_time_demand"])


async def alerts(conn: DictConnection, shop: str) -> AsyncGenerator[dict[str, Any], None]:
    """Every alert of the shop, newest first, as ``connectors.db.alerts.history`` reads it
    (its figures and each recipient's delivery included)."""
    async with conn.transaction():
        cursor = await history_cursor(conn, shop, HistoryFilter())
        async with cursor:
            cursor.itersize = ROWS_PER_FETCH
            async for row in cursor:
                yield row


@asynccontextmanager
async def _cursor(
    conn: DictConnection,
    name: str,
    query: str,
    params: Mapping[str, Any],
    rows_per_fetch: int = ROWS_PER_FETCH,
) -> AsyncIterator[AsyncServerCursor[dict[str, Any]]]:
    # A server-side cursor lives in a transaction: this one begins it on a connection in
    # autocommit (or outside a transaction), and nests as a savepoint otherwise. A context
    # manager rather than a generator, so a report closed early closes the cursor with it.
    async with conn.transaction(), conn.cursor(name=name) as cursor:
        cursor.itersize = rows_per_fetch
        await cursor.execute(query, params)
        yield cursor
