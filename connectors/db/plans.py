"""The latest forecast and inventory plan per SKU, as published on ``stockpulse.forecasts``.

One row per SKU, replaced by each forecast round; the stored row and the message are the same
object (:class:`connectors.kafka.topics.ForecastUpdate`), so readers see what was published.
"""

from __future__ import annotations

from collections.abc import Sequence

from psycopg.types.json import Jsonb

from connectors.db.pool import DictConnection
from connectors.kafka.topics import ForecastUpdate

_FIELDS = (
    "first_day",
    "mean",
    "lower",
    "upper",
    "method",
    "members",
    "season",
    "confidence",
    "mase",
    "stock",
    "days_of_cover",
    "stockout_date",
    "safety_stock",
    "reorder_point",
    "reorder_quantity",
    "overstock",
    "dead_stock_days",
    "abc_class",
    "as_of",
)


async def save(conn: DictConnection, plans: Sequence[ForecastUpdate]) -> None:
    """Upsert plans in the caller's transaction. An older plan never replaces a newer one, and
    rows are written in variant order, like every other writer of per-SKU rows."""
    rows = []
    for plan in sorted(plans, key=lambda p: (p.shop, p.variant_id)):
        values = plan.model_dump(include={"shop", "variant_id", *_FIELDS}, mode="json")
        values["members"] = Jsonb(values["members"])
        rows.append(values)
    if not rows:
        return
    columns = ", ".join(("shop", "variant_id", *_FIELDS))
    placeholders = ", ".join(f"%({c})s" for c in ("shop", "variant_id", *_FIELDS))
    updates = ", ".join(f"{c} = excluded.{c}" for c in _FIELDS)
    async with conn.cursor() as cur:
        await cur.executemany(
            f"INSERT INTO sku_plans AS p ({columns}) VALUES ({placeholders})"
            f" ON CONFLICT (shop, variant_id) DO UPDATE SET {updates}"
            " WHERE p.as_of <= excluded.as_of",
            rows,
        )
        by_shop: dict[str, list[int]] = {}
        for plan in plans:
            by_shop.setdefault(plan.shop, []).append(plan.variant_id)
        for shop, ids in by_shop.items():
            await cur.execute(
                "DELETE FROM plan_failures WHERE shop = %s AND variant_id = ANY(%s)", (shop, ids)
            )


async def record_failure(conn: DictConnection, shop: str, variant_id: int, reason: str) -> None:
    """Note, in its own transaction, that the SKU's plan could not be made, and why."""
    await conn.execute(
        "INSERT INTO plan_failures (shop, variant_id, reason) VALUES (%s, %s, %s)"
        " ON CONFLICT (shop, variant_id) DO UPDATE SET reason = excluded.reason,"
        " failed_at = now()",
        (shop, variant_id, reason[:2000]),
    )
    await conn.commit()


async def failure_count(conn: DictConnection) -> int:
    cur = await conn.execute("SELECT count(*) AS n FROM plan_failures")
    row = await cur.fetchone()
    return int(row["n"]) if row else 0


async def latest(
    conn: DictConnection, shop: str, variant_ids: Sequence[int] | None = None
) -> dict[int, ForecastUpdate]:
    cur = await conn.execute(
        f"SELECT shop, variant_id, {', '.join(_FIELDS)},"
        " (SELECT sku FROM variants v WHERE v.shop = p.shop AND v.variant_id = p.variant_id)"
        " AS sku FROM sku_plans p WHERE shop = %s"
        " AND (%s::bigint[] IS NULL OR variant_id = ANY(%s))",
        (shop, _ids(variant_ids), _ids(variant_ids)),
    )
    return {
        r["variant_id"]: ForecastUpdate.model_validate(
            {
                **r,
                "first_day": r["first_day"].isoformat(),
                "as_of": r["as_of"].isoformat(),
                "stockout_date": r["stockout_date"].isoformat() if r["stockout_date"] else None,
            }
        )
        for r in await cur.fetchall()
    }


def _ids(variant_ids: Sequence[int] | None) -> list[int] | None:
    return list(variant_ids) if variant_ids is not None else None
