"""Read queries shared by the dashboard, the JSON API and the published updates."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from connectors.db.pool import DictConnection
from models.inventory import DEMAND_WINDOW_DAYS, average_daily_demand, days_of_cover

# One row per SKU of a shop: stock summed over locations (untracked levels ignored) and units
# sold on the shop-local today, last 7 and last 28 days (today included).
_SKU_ROWS = """
WITH today AS (
    SELECT (now() AT TIME ZONE s.timezone)::date AS d FROM shops s WHERE s.domain = %(shop)s
),
demand AS (
    SELECT dd.variant_id,
           sum(dd.units) FILTER (WHERE dd.day = t.d) AS sold_today,
           sum(dd.units) FILTER (WHERE dd.day > t.d - 7) AS sold_7d,
           sum(dd.units) AS sold_28d
      FROM daily_demand dd CROSS JOIN today t
     WHERE dd.shop = %(shop)s AND dd.day > t.d - 28 AND dd.day <= t.d
       AND (%(ids)s::bigint[] IS NULL OR dd.variant_id = ANY(%(ids)s))
     GROUP BY dd.variant_id
),
stock AS (
    SELECT l.inventory_item_id, sum(l.available) AS stock
      FROM inventory_levels l
     WHERE l.shop = %(shop)s AND l.available IS NOT NULL
     GROUP BY l.inventory_item_id
)
SELECT v.variant_id, v.product_id, v.sku,
       concat_ws(' / ', v.product_title, nullif(v.variant_title, 'Default Title')) AS title,
       st.stock,
       coalesce(d.sold_today, 0)::int AS sold_today,
       coalesce(d.sold_7d, 0)::int AS sold_7d,
       coalesce(d.sold_28d, 0)::int AS sold_28d,
       (SELECT d FROM today) AS today
  FROM variants v
  LEFT JOIN demand d ON d.variant_id = v.variant_id
  LEFT JOIN stock st ON st.inventory_item_id = v.inventory_item_id
 WHERE v.shop = %(shop)s AND NOT v.deleted
   AND (%(ids)s::bigint[] IS NULL OR v.variant_id = ANY(%(ids)s))
 ORDER BY v.product_title NULLS LAST, v.variant_title, v.variant_id
"""


@dataclass(frozen=True, slots=True)
class SkuRow:
    variant_id: int
    product_id: int | None
    sku: str | None
    title: str | None
    stock: int | None
    sold_today: int
    sold_7d: int
    sold_28d: int
    avg_daily_demand: float
    days_of_cover: float | None
    today: date | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "variant_id": self.variant_id,
            "sku": self.sku,
            "title": self.title,
            "stock": self.stock,
            "sold_today": self.sold_today,
            "sold_7d": self.sold_7d,
            "sold_28d": self.sold_28d,
            "avg_daily_demand": round(self.avg_daily_demand, 3),
            "days_of_cover": None if self.days_of_cover is None else round(self.days_of_cover, 1),
        }


def _to_row(r: dict[str, Any]) -> SkuRow:
    stock = None if r["stock"] is None else int(r["stock"])
    avg = average_daily_demand(r["sold_28d"], DEMAND_WINDOW_DAYS)
    return SkuRow(
        variant_id=r["variant_id"],
        product_id=r["product_id"],
        sku=r["sku"],
        title=r["title"] or None,
        stock=stock,
        sold_today=r["sold_today"],
        sold_7d=r["sold_7d"],
        sold_28d=r["sold_28d"],
        avg_daily_demand=avg,
        days_of_cover=days_of_cover(stock, avg),
        today=r["today"],
    )


async def sku_rows(
    conn: DictConnection, shop: str, variant_ids: Sequence[int] | None = None
) -> list[SkuRow]:
    """The shop's SKUs (or just ``variant_ids``) with stock and demand figures."""
    cur = await conn.execute(
        _SKU_ROWS, {"shop": shop, "ids": list(variant_ids) if variant_ids is not None else None}
    )
    return [_to_row(r) for r in await cur.fetchall()]


async def known_shops(conn: DictConnection) -> set[str]:
    cur = await conn.execute("SELECT domain FROM shops WHERE uninstalled_at IS NULL")
    return {r["domain"] for r in await cur.fetchall()}


async def shop_installed(conn: DictConnection, shop: str) -> bool:
    cur = await conn.execute(
        "SELECT 1 FROM shops WHERE domain = %s AND uninstalled_at IS NULL", (shop,)
    )
    return await cur.fetchone() is not None


async def get_shop(conn: DictConnection, shop: str) -> dict[str, Any] | None:
    cur = await conn.execute(
        "SELECT domain, name, timezone, currency FROM shops WHERE domain = %s", (shop,)
    )
    return await cur.fetchone()
