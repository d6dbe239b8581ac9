"""What the dashboard's charts read: units sold per shop-local day, the forecast ahead summed
over SKUs, and each SKU's stock and cover grouped under its product.

Every statement filters by shop. Days are the shop's own (``shops.timezone``), as in
``daily_demand`` and the plans' ``first_day``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from connectors.db.pool import DictConnection

# The dashboard's own per-SKU figures, so a product's bar agrees with the table's rows.
from connectors.db.queries import SKU_ROWS_SQL, SkuRow, sku_row

_TODAY = """
SELECT (now() AT TIME ZONE timezone)::date AS today, timezone FROM shops WHERE domain = %(shop)s
"""

# Every day of the window comes out, a day without sales as 0: a chart must not draw a line
# straight across days nobody bought anything.
_UNITS_PER_DAY = """
WITH window_days AS (
    SELECT g.day::date AS day
      FROM generate_series(%(first)s::date, %(last)s::date, interval '1 day') AS g(day)
),
sold AS (
    SELECT dd.day, sum(dd.units)::bigint AS units
      FROM daily_demand dd
     WHERE dd.shop = %(shop)s AND dd.day BETWEEN %(first)s AND %(last)s
       AND (%(variant)s::bigint IS NULL OR dd.variant_id = %(variant)s)
     GROUP BY dd.day
)
SELECT w.day, coalesce(s.units, 0) AS units
  FROM window_days w LEFT JOIN sold s ON s.day = w.day
 ORDER BY w.day
"""

# The forecast ahead is the sum over SKUs of each latest plan's days from today on.
#
# The mean is additive; the 80 % bounds are not. Each SKU's bounds are its own 10th and 90th
# percentiles, and adding percentiles gives the percentile of the sum only if every SKU is
# high (or low) on the same days, perfectly correlated. With many SKUs whose errors partly
# cancel, that band is far too wide: n independent SKUs of equal spread give a band sqrt(n)
# times too wide. So the SKUs are taken as independent: each side's half-width is z·sigma_i
# (z = 1.2816 for 80 %), the variances add, and the shop's half-width is
# z·sqrt(sum sigma_i²) = sqrt(sum halfwidth_i²). The two sides are combined apart, because a
# SKU's interval is lopsided (its lower bound is clipped at 0 units). Shared swings (a
# holiday, a promotion) make SKUs co-move, so the true band lies between this one and the sum
# of the bounds; the weekly rhythm they share is already in the means. For one SKU this is its
# own interval, unchanged.
#
# Only plans that still reach today count (a deleted variant's plan does not), and the
# horizon ends where the shortest of them does: past it the sum would silently lose SKUs.
_FORECAST_AHEAD = """
WITH plans AS (
    SELECT p.first_day, p.mean, p.lower, p.upper
      FROM sku_plans p
      JOIN variants v ON v.shop = p.shop AND v.variant_id = p.variant_id AND NOT v.deleted
     WHERE p.shop = %(shop)s
       AND (%(variant)s::bigint IS NULL OR p.variant_id = %(variant)s)
       AND p.first_day + cardinality(p.mean) - 1 >= %(today)s
),
plan_days AS (
    SELECT p.first_day + (f.i - 1)::int AS day,
           f.mean::float8 AS mean, f.lower::float8 AS lower, f.upper::float8 AS upper
      FROM plans p,
           unnest(p.mean, p.lower, p.upper) WITH ORDINALITY AS f(mean, lower, upper, i)
)
SELECT day,
       sum(mean) AS mean,
       greatest(sum(mean) - sqrt(sum(greatest(mean - lower, 0) ^ 2)), 0) AS lower,
       sum(mean) + sqrt(sum(greatest(upper - mean, 0) ^ 2)) AS upper,
       count(*) AS skus
  FROM plan_days
 WHERE day >= %(today)s
 GROUP BY day
HAVING count(*) = (SELECT count(*) FROM plans)
 ORDER BY day
"""

_SKUS_WITH_PRODUCT = f"""
SELECT sku.*, v.product_title
  FROM ({SKU_ROWS_SQL}) sku
  JOIN variants v ON v.shop = %(shop)s AND v.variant_id = sku.variant_id
"""


@dataclass(frozen=True)
class ShopDay:
    today: date
    timezone: str


@dataclass(frozen=True)
class ForecastDay:
    """The forecast of one day summed over ``skus`` SKUs: mean units and the 80 % band."""

    day: date
    mean: float
    lower: float
    upper: float
    skus: int


@dataclass(frozen=True)
class ProductSku:
    """A SKU as the dashboard's table reads it, and the title of the product it belongs to."""

    row: SkuRow
    product_title: str | None


async def shop_day(conn: DictConnection, shop: str) -> ShopDay:
    """The shop-local date today, and the shop's time zone."""
    cur = await conn.execute(_TODAY, {"shop": shop})
    found = await cur.fetchone()
    if found is None:
        raise LookupError(shop)
    return ShopDay(found["today"], found["timezone"])


async def variant_known(conn: DictConnection, shop: str, variant_id: int) -> bool:
    cur = await conn.execute(
        "SELECT 1 FROM variants WHERE shop = %s AND variant_id = %s", (shop, variant_id)
    )
    return await cur.fetchone() is not None


async def units_per_day(
    conn: DictConnection, shop: str, first: date, last: date, variant_id: int | None = None
) -> list[tuple[date, int]]:
    """Units sold on each shop-local day from ``first`` to ``last`` (both included), of the
    shop or of one SKU; 0 on days without sales."""
    cur = await conn.execute(
        _UNITS_PER_DAY, {"shop": shop, "first": first, "last": last, "variant": variant_id}
    )
    return [(r["day"], r["units"]) for r in await cur.fetchall()]


async def forecast_ahead(
    conn: DictConnection, shop: str, today: date, variant_id: int | None = None
) -> list[ForecastDay]:
    """The latest plans' forecast from ``today`` on, summed over the shop's SKUs (or one
    SKU's own); empty while no plan reaches today."""
    cur = await conn.execute(_FORECAST_AHEAD, {"shop": shop, "today": today, "variant": variant_id})
    return [
        ForecastDay(r["day"], r["mean"], r["lower"], r["upper"], r["skus"])
        for r in await cur.fetchall()
    ]


async def skus_with_products(conn: DictConnection, shop: str) -> list[ProductSku]:
    """Every SKU the dashboard lists, with its product's title."""
    cur = await conn.execute(_SKUS_WITH_PRODUCT, {"shop": shop, "ids": None})
    return [ProductSku(sku_row(r), r["product_title"]) for r in await cur.fetchall()]
