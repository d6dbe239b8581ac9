"""Read queries shared by the dashboard, the JSON API and the published updates."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from connectors.db.pool import DictConnection
from connectors.kafka.topics import CoverBasis, SkuFigures

# One row per SKU of a shop: stock summed over locations (untracked levels ignored, and none at
# all for a variant Shopify does not track: its levels' figures are not counts anyone keeps,
# so it has no cover and no stock alerts) and units sold on the shop-local today, last 7 and
# last 28 days (today included).
SKU_ROWS_SQL = """
WITH today AS (
    SELECT (now() AT TIME ZONE s.timezone)::date AS d FROM shops s WHERE s.domain = %(shop)s
),
demand AS (
    SELECT dd.variant_id,
           (sum(dd.units) FILTER (WHERE dd.day = t.d))::bigint AS sold_today,
           (sum(dd.units) FILTER (WHERE dd.day > t.d - 7))::bigint AS sold_7d,
           sum(dd.units)::bigint AS sold_28d
      FROM daily_demand dd CROSS JOIN today t
     -- Bounded by scalar subqueries, not the join, so the (shop, day) index limits the scan.
     WHERE dd.shop = %(shop)s AND dd.day > (SELECT d FROM today) - 28
       AND dd.day <= (SELECT d FROM today)
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
       coalesce(d.sold_today, 0) AS sold_today,
       coalesce(d.sold_7d, 0) AS sold_7d,
       coalesce(d.sold_28d, 0) AS sold_28d,
       (SELECT d FROM today) AS today,
       CASE WHEN p.as_of IS NULL OR st.stock IS NOT DISTINCT FROM p.stock THEN p.days_of_cover
            WHEN st.stock <= 0 THEN 0
            ELSE fresh.days_of_cover END AS plan_days_of_cover,
       CASE WHEN p.as_of IS NULL OR st.stock IS NOT DISTINCT FROM p.stock THEN p.stockout_date
            WHEN st.stock <= 0 THEN (SELECT d FROM today)
            ELSE (SELECT d FROM today) + fresh.day END AS stockout_date,
       p.reorder_point,
       p.reorder_quantity, p.abc_class, p.confidence, p.mase, p.method, p.as_of AS plan_as_of
  FROM variants v
  LEFT JOIN demand d ON d.variant_id = v.variant_id
  LEFT JOIN stock st ON st.inventory_item_id = v.inventory_item_id AND v.tracked
  LEFT JOIN sku_plans p ON p.shop = v.shop AND p.variant_id = v.variant_id
  -- Stock moved since the plan was made (its forecast message follows within a moment): the
  -- plan's forecast, less what sold today, walked down from the stock now, as the plan does
  -- (models.policy.project_stockout), so that a message never says 2.1 days of cover beside
  -- a stock of 0 (an outside test).
  LEFT JOIN LATERAL (
      SELECT (m.i - 1) + (st.stock - (m.cum - m.demand)) / m.demand AS days_of_cover,
             (m.i - 1)::int AS day
        FROM (SELECT f.demand, f.i, sum(f.demand) OVER (ORDER BY f.i) AS cum
                FROM (SELECT u.i, CASE WHEN u.i = 1
                                       THEN greatest(u.m - coalesce(d.sold_today, 0), 0)
                                       ELSE u.m END AS demand
                        FROM unnest(p.mean[(SELECT d FROM today) - p.first_day + 1:]::float8[])
                             WITH ORDINALITY AS u(m, i)) f) m
       WHERE p.as_of IS NOT NULL AND st.stock IS DISTINCT FROM p.stock AND st.stock > 0
         AND m.demand > 0 AND m.cum >= st.stock
       ORDER BY m.i LIMIT 1
  ) fresh ON true
 WHERE v.shop = %(shop)s AND NOT v.deleted
   AND (%(ids)s::bigint[] IS NULL OR v.variant_id = ANY(%(ids)s))
 ORDER BY v.product_title NULLS LAST, v.variant_title, v.variant_id
"""


class SkuRow(SkuFigures):
    """A SKU as stored: its public figures (the derived ones not filled in yet) and what those
    are derived from. Deriving (average demand, which days of cover to show) is the caller's:
    see ``models.inventory.cover``."""

    product_id: int | None
    today: date | None
    plan_days_of_cover: float | None
    avg_daily_demand: float = 0.0
    days_of_cover: float | None = None
    days_of_cover_basis: CoverBasis = "28-day average"

    def figures(
        self, avg_daily_demand: float, days_of_cover: float | None, basis: CoverBasis
    ) -> SkuFigures:
        """The public figures, with the derived ones given."""
        return SkuFigures(
            **self.model_dump(include=set(SkuFigures.model_fields)),
        ).model_copy(
            update={
                "avg_daily_demand": round(avg_daily_demand, 3),
                "days_of_cover": None if days_of_cover is None else round(days_of_cover, 1),
                "days_of_cover_basis": basis,
            }
        )


def sku_row(r: dict[str, Any]) -> SkuRow:
    return SkuRow(
        **{
            **r,
            "title": r["title"] or None,
            "stock": None if r["stock"] is None else int(r["stock"]),
            "stockout_date": r["stockout_date"].isoformat() if r["stockout_date"] else None,
            "plan_as_of": r["plan_as_of"].isoformat() if r["plan_as_of"] else None,
            "mase": None if r["mase"] is None else round(r["mase"], 3),
        }
    )


async def removed_skus(
    conn: DictConnection, shop: str, variant_ids: Sequence[int]
) -> list[tuple[int, str | None]]:
    """Which of ``variant_ids`` the shop deleted, with their SKUs."""
    cur = await conn.execute(
        "SELECT variant_id, sku FROM variants"
        " WHERE shop = %s AND variant_id = ANY(%s) AND deleted ORDER BY variant_id",
        (shop, list(variant_ids)),
    )
    return [(r["variant_id"], r["sku"]) for r in await cur.fetchall()]


async def sku_rows(
    conn: DictConnection, shop: str, variant_ids: Sequence[int] | None = None
) -> list[SkuRow]:
    """The shop's SKUs (or just ``variant_ids``) with stock and demand figures."""
    cur = await conn.execute(
        SKU_ROWS_SQL, {"shop": shop, "ids": list(variant_ids) if variant_ids is not None else None}
    )
    return [sku_row(r) for r in await cur.fetchall()]


async def live_variant_ids(conn: DictConnection, shop: str) -> list[int]:
    """The shop's SKUs that :func:`sku_rows` covers, by variant id."""
    cur = await conn.execute(
        "SELECT variant_id FROM variants WHERE shop = %s AND NOT deleted ORDER BY variant_id",
        (shop,),
    )
    return [r["variant_id"] for r in await cur.fetchall()]
