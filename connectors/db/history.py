"""Bulk loading of a shop's past: its catalogue, units sold per day and stock changes.

Written as the pipeline stores them, with ``COPY`` instead of one event at a time, so that a
benchmark can seed years of history in seconds. For a shop the worker has not seen yet.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime

import psycopg

# (variant_id, product_id, sku, product_title, inventory_item_id, price)
VariantRow = tuple[int, int, str | None, str | None, int, float]
# (variant_id, shop-local day, net units, revenue)
DemandRow = tuple[int, date, int, float]
# (inventory_item_id, location_id, available, when)
StockRow = tuple[int, int, int | None, datetime]


def copy_history(
    database_url: str,
    shop: str,
    variants: Iterable[VariantRow],
    demand: Iterable[DemandRow],
    stock: Iterable[StockRow],
) -> None:
    """Store the rows in one transaction. Levels carry forward between stock rows, as the
    pipeline's do."""
    with psycopg.connect(database_url) as conn, conn.cursor() as cur:
        with cur.copy(
            "COPY variants (shop, variant_id, product_id, sku, product_title, inventory_item_id,"
            " price) FROM STDIN"
        ) as copy:
            for variant in variants:
                copy.write_row((shop, *variant))
        with cur.copy(
            "COPY daily_demand (shop, variant_id, day, units, revenue) FROM STDIN"
        ) as copy:
            for day in demand:
                copy.write_row((shop, *day))
        with cur.copy(
            "COPY stock_history (shop, inventory_item_id, location_id, available, ts) FROM STDIN"
        ) as copy:
            for level in stock:
                copy.write_row((shop, *level))
        # The trigger on daily_demand noted every loaded day as a correction of a closed day;
        # no model has learned them yet, so there is nothing to correct.
        conn.execute("DELETE FROM demand_corrections WHERE shop = %s", (shop,))
