"""One product's story: its daily sales with the days it was out of stock, and how the
nightly forecasts of it did against what then sold."""

from __future__ import annotations

from datetime import date
from typing import Any

from connectors.db.pool import DictConnection

# A run is judged on at most this many days after it, the horizon plans act on.
JUDGED_DAYS = 28


async def daily_history(
    conn: DictConnection, shop: str, variant_id: int, since: date, until: date
) -> list[dict[str, Any]]:
    """Each shop-local day in [since, until] from the shop's first day of sales on (before it
    nothing is known: a chart drew a month of zeros before a 90-day backfill): units sold, and
    whether the product was out of stock at some moment of the day (its total across
    locations at or below zero). Days with no stock record after the first one carry the last
    known level forward."""
    cur = await conn.execute(
        """
        WITH days AS (
            SELECT d::date AS day
              FROM generate_series(
                     greatest(%(since)s::date,
                              (SELECT min(day) FROM daily_demand WHERE shop = %(shop)s)),
                     %(until)s::date, interval '1 day') d
        ),
        item AS (SELECT inventory_item_id FROM variants
                  WHERE shop = %(shop)s AND variant_id = %(variant)s),
        points AS (
            -- The product's total over its locations after each change (the newest level
            -- of every location at that moment). NULL: Shopify does not track it.
            SELECT c.ts, (c.ts AT TIME ZONE s.timezone)::date AS day,
                   (SELECT sum(latest.available) FROM (
                        SELECT DISTINCT ON (x.location_id) x.available
                          FROM stock_history x
                         WHERE x.shop = %(shop)s
                           AND x.inventory_item_id = (SELECT * FROM item) AND x.ts <= c.ts
                         ORDER BY x.location_id, x.ts DESC) latest) AS total
              FROM (SELECT DISTINCT ts FROM stock_history
                     WHERE shop = %(shop)s AND inventory_item_id = (SELECT * FROM item)) c,
                   shops s
             WHERE s.domain = %(shop)s
        ),
        lows AS (SELECT day, min(total) AS low FROM points GROUP BY day)
        SELECT d.day,
               coalesce(dd.units, 0) AS units,
               coalesce(l.low <= 0, false)
                 OR coalesce((SELECT p.total FROM points p WHERE p.day < d.day
                               ORDER BY p.ts DESC LIMIT 1) <= 0, false) AS stockout
          FROM days d
          LEFT JOIN daily_demand dd
                 ON dd.shop = %(shop)s AND dd.variant_id = %(variant)s AND dd.day = d.day
          LEFT JOIN lows l ON l.day = d.day
         ORDER BY d.day
        """,
        {"shop": shop, "variant": variant_id, "since": since, "until": until},
    )
    return list(await cur.fetchall())


async def run_accuracy(
    conn: DictConnection, shop: str, variant_id: int, today: date, runs: int = 8
) -> list[dict[str, Any]]:
    """The last ``runs`` nightly forecasts of the product, each judged on the closed days
    since it was made (up to 28): WAPE (absolute errors over units sold) and the MASE the
    run stored, with the model it used."""
    cur = await conn.execute(
        """
        SELECT r.run_day, f.model, f.mase,
               count(a.day) AS days,
               sum(abs(f.mean[(a.day::date - f.first_day) + 1] - coalesce(dd.units, 0)))
                 AS abs_error,
               sum(coalesce(dd.units, 0))::bigint AS sold
          FROM forecast_runs r
          JOIN run_forecasts f ON f.run_id = r.id AND f.variant_id = %(variant)s
          LEFT JOIN LATERAL generate_series(
                 f.first_day, least(%(today)s::date - 1, f.first_day + %(judged)s - 1),
                 interval '1 day') AS a(day) ON true
          LEFT JOIN daily_demand dd
                 ON dd.shop = r.shop AND dd.variant_id = f.variant_id AND dd.day = a.day::date
         WHERE r.shop = %(shop)s AND r.status = 'committed'
         GROUP BY r.run_day, f.model, f.mase
         ORDER BY r.run_day DESC
         LIMIT %(runs)s
        """,
        {"shop": shop, "variant": variant_id, "today": today, "judged": JUDGED_DAYS, "runs": runs},
    )
    out = []
    for r in await cur.fetchall():
        sold = float(r["sold"] or 0)
        out.append(
            {
                "run_day": r["run_day"].isoformat(),
                "model": r["model"],
                "mase": None if r["mase"] is None else round(float(r["mase"]), 3),
                "days_judged": int(r["days"] or 0),
                "wape": round(float(r["abs_error"]) / sold, 3) if sold and r["abs_error"] else None,
            }
        )
    return out
