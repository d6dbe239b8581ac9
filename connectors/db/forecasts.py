"""Queries behind forecasting: demand history, online model state and nightly runs."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, time, timedelta
from typing import Any

import numpy as np
from psycopg.types.json import Jsonb

from connectors.db.pool import DictConnection
from connectors.db.shops import ACTIVE_SHOPS

RUNS_KEPT_DAYS = 90
MEMBERS_KEPT_DAYS = 63  # the oldest validation run is 56 days old, give or take a week


# Per shop-local day and location: the level it closed the day on and the highest it reached.
StockLevels = dict[date, dict[int, tuple[int, int]]]


@dataclass(frozen=True)
class DemandHistory:
    """A SKU's units per shop-local day from ``first_day``, and its recorded stock levels (which
    days it could sell is a modelling rule: ``models.inventory.in_stock_days``)."""

    first_day: date
    units: np.ndarray
    stock_levels: StockLevels
    last_sale: date | None

    def day(self, index: int) -> date:
        return self.first_day + timedelta(days=index)


_DEMAND = """
SELECT variant_id, day, units FROM daily_demand
 WHERE shop = %(shop)s AND day <= %(last)s
   AND (%(first)s::date IS NULL OR day >= %(first)s)
   AND (%(ids)s::bigint[] IS NULL OR variant_id = ANY(%(ids)s))
 ORDER BY variant_id, day
"""

# Per SKU, location and shop-local day: the level it closed the day on and the highest it
# reached. A day is out of stock when nothing sold and no location had stock at any point. A
# variant Shopify does not track has none: every day could sell.
_STOCK_DAYS = """
SELECT v.variant_id, sh.location_id, (sh.ts AT TIME ZONE s.timezone)::date AS day,
       (array_agg(sh.available ORDER BY sh.ts DESC))[1] AS closing,
       max(sh.available) AS highest
  FROM stock_history sh
  JOIN shops s ON s.domain = sh.shop
  JOIN variants v ON v.shop = sh.shop AND v.inventory_item_id = sh.inventory_item_id
                 AND v.tracked
 WHERE sh.shop = %(shop)s AND sh.available IS NOT NULL
   AND sh.ts < ((%(last)s::date + 1)::timestamp AT TIME ZONE s.timezone)
   AND (%(ids)s::bigint[] IS NULL OR v.variant_id = ANY(%(ids)s))
 GROUP BY 1, 2, 3
 ORDER BY 1, 3
"""


async def demand_history(
    conn: DictConnection,
    shop: str,
    last: date,
    variant_ids: Sequence[int] | None = None,
    first: date | None = None,
    since: date | None = None,
) -> dict[int, DemandHistory]:
    """Closed days up to ``last``, zero-filled, with stockouts: for every SKU in
    ``variant_ids`` when ``first`` is given (a SKU that sold nothing has a run of zeros), else
    for each SKU from its first sale on or after ``since`` (none if it sold nothing since)."""
    floor = first or since
    params = {"shop": shop, "last": last, "first": floor, "ids": _ids(variant_ids)}
    sold: dict[int, dict[date, int]] = defaultdict(dict)
    for r in await (await conn.execute(_DEMAND, params)).fetchall():
        sold[r["variant_id"]][r["day"]] = r["units"]
    stock_days: dict[int, StockLevels] = defaultdict(lambda: defaultdict(dict))
    for r in await (await conn.execute(_STOCK_DAYS, params)).fetchall():
        stock_days[r["variant_id"]][r["day"]][r["location_id"]] = (r["closing"], r["highest"])
    wanted = variant_ids if (first is not None and variant_ids is not None) else list(sold)
    histories = {}
    for variant_id in wanted:
        by_day = sold.get(variant_id, {})
        if first is None and not by_day:
            continue
        start = first or min(by_day)
        length = (last - start).days + 1
        if length <= 0:
            continue
        units = np.zeros(length)
        for day, n in by_day.items():
            units[(day - start).days] = n
        sales = [d for d, n in by_day.items() if n > 0]
        histories[variant_id] = DemandHistory(
            start, units, dict(stock_days.get(variant_id, {})), max(sales, default=None)
        )
    return histories


def _ids(variant_ids: Sequence[int] | None) -> list[int] | None:
    return list(variant_ids) if variant_ids is not None else None


async def load_models(
    conn: DictConnection, shop: str, variant_ids: Sequence[int]
) -> dict[int, bytes]:
    cur = await conn.execute(
        "SELECT variant_id, state FROM sku_models WHERE shop = %s AND variant_id = ANY(%s)",
        (shop, list(variant_ids)),
    )
    return {r["variant_id"]: bytes(r["state"]) for r in await cur.fetchall()}


async def take_corrections(
    conn: DictConnection, shop: str, variant_ids: Sequence[int] | None
) -> dict[int, date]:
    """Remove and return the earliest corrected closed day per SKU; inside the caller's
    transaction, so the rows come back unless the rebuilt models are committed."""
    # The write path adds these notes (a trigger on daily_demand) in whatever order its batch
    # has, and holds them until it commits. Waiting for one here while holding another is a
    # deadlock, so notes another transaction holds are skipped: that transaction's SKUs are
    # forecast again right after it commits, and the next round takes them.
    cur = await conn.execute(
        "DELETE FROM demand_corrections c USING ("
        "  SELECT variant_id FROM demand_corrections WHERE shop = %s"
        "   AND (%s::bigint[] IS NULL OR variant_id = ANY(%s))"
        "   ORDER BY variant_id FOR UPDATE SKIP LOCKED) locked"
        " WHERE c.shop = %s AND c.variant_id = locked.variant_id"
        " RETURNING c.variant_id, c.earliest_day",
        (shop, _ids(variant_ids), _ids(variant_ids), shop),
    )
    return {r["variant_id"]: r["earliest_day"] for r in await cur.fetchall()}


async def save_models(
    conn: DictConnection, shop: str, states: Iterable[tuple[int, bytes, date | None, int]]
) -> None:
    """Upsert ``(variant_id, state, last_day, days_learned)`` rows."""
    async with conn.cursor() as cur:
        await cur.executemany(
            """
            INSERT INTO sku_models (shop, variant_id, state, last_day, days_learned)
            VALUES (%s, %s, %s, %s, %s)
            ON CONFLICT (shop, variant_id) DO UPDATE
               SET state = EXCLUDED.state, last_day = EXCLUDED.last_day,
                   days_learned = EXCLUDED.days_learned, updated_at = now()
            """,
            # In variant order, like every other writer of these rows: no lock-order deadlock.
            [
                (shop, v, state, last_day, n)
                for v, state, last_day, n in sorted(states, key=lambda s: s[0])
            ],
        )


async def current_run(conn: DictConnection, shop: str) -> int | None:
    """The shop's last committed nightly run."""
    cur = await conn.execute(
        "SELECT id FROM forecast_runs WHERE shop = %s AND status = 'committed' "
        "ORDER BY run_day DESC LIMIT 1",
        (shop,),
    )
    row = await cur.fetchone()
    return row["id"] if row else None


async def run_forecasts(
    conn: DictConnection, run_id: int, variant_ids: Sequence[int] | None = None
) -> dict[int, dict[str, Any]]:
    cur = await conn.execute(
        "SELECT variant_id, first_day, mean, lower, upper, model, mase, abc_class, weights, "
        "spread, season FROM run_forecasts WHERE run_id = %s "
        "AND (%s::bigint[] IS NULL OR variant_id = ANY(%s))",
        (run_id, _ids(variant_ids), _ids(variant_ids)),
    )
    return {r["variant_id"]: r for r in await cur.fetchall()}


async def shops_due_for_nightly(conn: DictConnection, at: time) -> list[str]:
    """Installed shops whose local clock is past ``at`` with no committed run for today.

    A worker that was down at the refit time (or a run that failed) so catches up later the
    same day; a shop installed in the afternoon gets its first forecasts the same day."""
    cur = await conn.execute(
        f"""
        SELECT s.domain FROM {ACTIVE_SHOPS} s
         WHERE (now() AT TIME ZONE s.timezone)::time >= %s
           AND NOT EXISTS (
               SELECT 1 FROM forecast_runs r
                WHERE r.shop = s.domain AND r.status = 'committed'
                  AND r.run_day = (now() AT TIME ZONE s.timezone)::date)
         ORDER BY s.domain
        """,
        (at,),
    )
    return [r["domain"] for r in await cur.fetchall()]


# A shop's local today, its last committed nightly run and its settings version: when any
# changes, the shop's forecasts and plans are due again.
ForecastState = tuple[date, int | None, int]


async def forecast_states(
    conn: DictConnection,
) -> dict[str, tuple[ForecastState, ForecastState | None]]:
    """Each installed shop's state now, and the one its forecasts were last republished for
    (None if never)."""
    cur = await conn.execute(
        f"""
        SELECT s.domain, (now() AT TIME ZONE s.timezone)::date AS today,
               (SELECT max(id) FROM forecast_runs r
                 WHERE r.shop = s.domain AND r.status = 'committed') AS run,
               coalesce((SELECT version FROM shop_settings t WHERE t.shop = s.domain), 0)
                 AS settings,
               p.local_day AS published_day, p.run_id AS published_run,
               p.settings AS published_settings
          FROM {ACTIVE_SHOPS} s
          LEFT JOIN forecast_publications p ON p.shop = s.domain
        """
    )
    return {
        r["domain"]: (
            (r["today"], r["run"], r["settings"]),
            None
            if r["published_day"] is None
            else (r["published_day"], r["published_run"], r["published_settings"]),
        )
        for r in await cur.fetchall()
    }


async def mark_published(conn: DictConnection, shop: str, state: ForecastState) -> None:
    """Record that the shop's forecasts were republished for ``state``."""
    await conn.execute(
        """
        INSERT INTO forecast_publications (shop, local_day, run_id, settings)
        SELECT domain, %s, %s, %s FROM shops WHERE domain = %s
        ON CONFLICT (shop) DO UPDATE
           SET local_day = EXCLUDED.local_day, run_id = EXCLUDED.run_id,
               settings = EXCLUDED.settings, published_at = now()
        """,
        (*state, shop),
    )


async def try_lock_nightly(conn: DictConnection, shop: str) -> bool:
    """Take the shop's nightly lock for this session; a crashed holder's goes with its
    connection."""
    cur = await conn.execute(
        "SELECT pg_try_advisory_lock(hashtext('stockpulse.nightly'), hashtext(%s)) AS locked",
        (shop,),
    )
    row = await cur.fetchone()
    return bool(row and row["locked"])


async def unlock_nightly(conn: DictConnection, shop: str) -> None:
    await conn.execute(
        "SELECT pg_advisory_unlock(hashtext('stockpulse.nightly'), hashtext(%s))", (shop,)
    )


async def open_run(conn: DictConnection, shop: str, run_day: date) -> tuple[int, str]:
    """The run for ``shop`` and ``run_day``: a new one, or the one a crash left behind."""
    cur = await conn.execute(
        """
        INSERT INTO forecast_runs (shop, run_day, status) VALUES (%s, %s, 'running')
        ON CONFLICT (shop, run_day) DO UPDATE SET shop = EXCLUDED.shop
        RETURNING id, status
        """,
        (shop, run_day),
    )
    row = await cur.fetchone()
    assert row is not None
    return row["id"], row["status"]


async def done_in_run(conn: DictConnection, run_id: int) -> set[int]:
    cur = await conn.execute("SELECT variant_id FROM run_forecasts WHERE run_id = %s", (run_id,))
    return {r["variant_id"] for r in await cur.fetchall()}


async def add_run_forecasts(
    conn: DictConnection, run_id: int, shop: str, rows: Sequence[dict[str, Any]]
) -> None:
    async with conn.cursor() as cur:
        await cur.executemany(
            """
            INSERT INTO run_forecasts (run_id, shop, variant_id, first_day, mean, lower, upper,
                                       model, mase, abc_class, fit_seconds, members, weights,
                                       demand_class, spread, season)
            VALUES (%(run_id)s, %(shop)s, %(variant_id)s, %(first_day)s, %(mean)s, %(lower)s,
                    %(upper)s, %(model)s, %(mase)s, %(abc_class)s, %(fit_seconds)s, %(members)s,
                    %(weights)s, %(demand_class)s, %(spread)s, %(season)s)
            ON CONFLICT (run_id, variant_id) DO NOTHING
            """,
            [
                {"run_id": run_id, "shop": shop, "members": None, "weights": None}
                | {"demand_class": None, "spread": None, "season": None}
                | row
                | {
                    "members": _json(row.get("members")),
                    "weights": _json(row.get("weights")),
                }
                for row in rows
            ],
        )


async def commit_run(conn: DictConnection, run_id: int, shop: str, run_day: date) -> None:
    """Make the run the shop's current forecasts and forget runs older than 90 days."""
    await conn.execute(
        "UPDATE forecast_runs SET status = 'committed', finished_at = now(), "
        "skus = (SELECT count(*) FROM run_forecasts WHERE run_id = %s) WHERE id = %s",
        (run_id, run_id),
    )
    await conn.execute(
        "DELETE FROM forecast_runs WHERE shop = %s AND run_day < %s",
        (shop, run_day - timedelta(days=RUNS_KEPT_DAYS)),
    )
    # Member forecasts weight the blend only while a run is one of the validation runs.
    await conn.execute(
        "UPDATE run_forecasts SET members = NULL "
        "WHERE shop = %s AND members IS NOT NULL AND first_day < %s",
        (shop, run_day - timedelta(days=MEMBERS_KEPT_DAYS)),
    )


async def validation_runs(
    conn: DictConnection, shop: str, run_day: date, ages: Sequence[int], slack: int = 7
) -> tuple[dict[int, list[dict[str, Any]]], list[int]]:
    """Per SKU, the member forecasts of the runs (committed or validation ones) made about
    ``ages`` days before ``run_day`` (for each age the latest run at least that old, at most
    ``slack`` days older), as ``{"first_day": …, "members": {name: [units per day]}}``; and
    the ages no run was found for."""
    runs, missing = [], []
    for age in ages:
        cur = await conn.execute(
            "SELECT id FROM forecast_runs WHERE shop = %s "
            "AND status IN ('committed', 'validation') "
            "AND run_day <= %s AND run_day > %s ORDER BY run_day DESC LIMIT 1",
            (shop, run_day - timedelta(days=age), run_day - timedelta(days=age + slack)),
        )
        row = await cur.fetchone()
        if row is None:
            missing.append(age)
        else:
            runs.append(row["id"])
    out: dict[int, list[dict[str, Any]]] = defaultdict(list)
    if runs:
        cur = await conn.execute(
            "SELECT variant_id, first_day, members FROM run_forecasts "
            "WHERE run_id = ANY(%s) AND members IS NOT NULL ORDER BY first_day",
            (runs,),
        )
        for r in await cur.fetchall():
            out[r["variant_id"]].append({"first_day": r["first_day"], "members": r["members"]})
    return out, missing


async def store_validation_run(
    conn: DictConnection, shop: str, run_day: date, members: dict[int, dict[str, list[float]]]
) -> bool:
    """Store member forecasts made afterwards from the history before ``run_day``, as the run
    of that day would have stored them; False when the shop has a run for that day already."""
    cur = await conn.execute(
        "INSERT INTO forecast_runs (shop, run_day, status, finished_at, skus) "
        "VALUES (%s, %s, 'validation', now(), %s) ON CONFLICT (shop, run_day) DO NOTHING "
        "RETURNING id",
        (shop, run_day, len(members)),
    )
    row = await cur.fetchone()
    if row is None:
        return False
    # A validation run publishes nothing: no mean or bounds, only what its members forecast.
    rows = [
        {"variant_id": variant_id, "first_day": run_day, "mean": [], "lower": [], "upper": []}
        | {"model": "validation", "mase": None, "abc_class": None, "fit_seconds": 0.0}
        | {"members": by_member}
        for variant_id, by_member in members.items()
    ]
    await add_run_forecasts(conn, row["id"], shop, rows)
    return True


def _json(value: object) -> Jsonb | None:
    return None if value is None else Jsonb(value)


async def count_run_forecasts(conn: DictConnection, shop: str, run_day: date) -> int:
    """Forecasts in the shop's committed run of ``run_day``."""
    cur = await conn.execute(
        "SELECT count(*) AS n FROM run_forecasts f JOIN forecast_runs r ON r.id = f.run_id "
        "WHERE r.shop = %s AND r.run_day = %s AND r.status = 'committed'",
        (shop, run_day),
    )
    row = await cur.fetchone()
    return int(row["n"]) if row else 0


async def past_forecasts(
    conn: DictConnection, shop: str, since: date, before: date
) -> dict[int, list[dict[str, Any]]]:
    """Forecasts of committed runs made from ``since`` up to ``before``, per SKU, oldest first."""
    cur = await conn.execute(
        """
        SELECT rf.variant_id, rf.first_day, rf.mean FROM run_forecasts rf
          JOIN forecast_runs r ON r.id = rf.run_id
         WHERE r.shop = %s AND r.status = 'committed' AND r.run_day >= %s AND r.run_day < %s
         ORDER BY r.run_day
        """,
        (shop, since, before),
    )
    out: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for r in await cur.fetchall():
        out[r["variant_id"]].append(r)
    return out


async def revenue_by_sku(conn: DictConnection, shop: str, since: date) -> dict[int, float]:
    cur = await conn.execute(
        "SELECT variant_id, sum(revenue)::float AS revenue FROM daily_demand "
        "WHERE shop = %s AND day >= %s GROUP BY variant_id",
        (shop, since),
    )
    return {r["variant_id"]: r["revenue"] for r in await cur.fetchall()}


async def shop_today(conn: DictConnection, shop: str) -> tuple[date, float, str | None]:
    """The shop-local date, the fraction of it already gone, and the shop's country."""
    cur = await conn.execute(
        "SELECT (now() AT TIME ZONE timezone)::date AS today, "
        "extract(epoch FROM (now() AT TIME ZONE timezone)::time) / 86400.0 AS elapsed, "
        "country_code FROM shops WHERE domain = %s",
        (shop,),
    )
    row = await cur.fetchone()
    if row is None:
        raise LookupError(shop)
    return row["today"], float(row["elapsed"]), row["country_code"]
