"""A shop's planning settings and per-product overrides, and what applies to each SKU."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

from connectors.db.pool import DictConnection
from connectors.settings import Settings


@dataclass(frozen=True)
class PlanSettings:
    """What a SKU's plan is computed with. None (threshold only): no low-stock line."""

    lead_time_days: int
    service_level: float
    target_cover_days: int
    low_stock_threshold: int | None = None


@dataclass(frozen=True)
class Overrides:
    """Settings a shop or product sets; None leaves the one below in force."""

    lead_time_days: int | None = None
    service_level: float | None = None
    target_cover_days: int | None = None
    low_stock_threshold: int | None = None

    def over(self, below: PlanSettings) -> PlanSettings:
        return replace(
            below,
            **{f.name: v for f in fields(self) if (v := getattr(self, f.name)) is not None},
        )


def deployment_defaults(settings: Settings) -> PlanSettings:
    """The deployment's ``LEAD_TIME_DAYS``, ``SERVICE_LEVEL`` and ``TARGET_COVER_DAYS``: what
    applies where neither a shop nor a product says otherwise."""
    return PlanSettings(
        lead_time_days=round(settings.lead_time_days),
        service_level=settings.service_level,
        target_cover_days=round(settings.target_cover_days),
    )


_COLUMNS = ", ".join(f.name for f in fields(Overrides))


def _overrides(row: dict[str, Any] | None) -> Overrides:
    if row is None:
        return Overrides()
    return Overrides(
        lead_time_days=row["lead_time_days"],
        service_level=float(row["service_level"]) if row["service_level"] is not None else None,
        target_cover_days=row["target_cover_days"],
        low_stock_threshold=row["low_stock_threshold"],
    )


async def shop_overrides(conn: DictConnection, shop: str) -> Overrides:
    cur = await conn.execute(f"SELECT {_COLUMNS} FROM shop_settings WHERE shop = %s", (shop,))
    return _overrides(await cur.fetchone())


async def save_shop(conn: DictConnection, shop: str, values: Overrides) -> None:
    params = {f.name: getattr(values, f.name) for f in fields(Overrides)}
    await conn.execute(
        f"INSERT INTO shop_settings (shop, {_COLUMNS}) VALUES (%(shop)s,"
        " %(lead_time_days)s, %(service_level)s, %(target_cover_days)s,"
        " %(low_stock_threshold)s)"
        " ON CONFLICT (shop) DO UPDATE SET lead_time_days = excluded.lead_time_days,"
        " service_level = excluded.service_level,"
        " target_cover_days = excluded.target_cover_days,"
        " low_stock_threshold = excluded.low_stock_threshold,"
        " version = shop_settings.version + 1, updated_at = now()",
        {"shop": shop, **params},
    )


async def product_overrides(conn: DictConnection, shop: str) -> dict[int, Overrides]:
    cur = await conn.execute(
        f"SELECT variant_id, {_COLUMNS} FROM sku_settings WHERE shop = %s ORDER BY variant_id",
        (shop,),
    )
    return {r["variant_id"]: _overrides(r) for r in await cur.fetchall()}


async def save_product(
    conn: DictConnection, shop: str, variant_id: int, values: Overrides | None
) -> None:
    """Set (or, with None, clear) a product's overrides, and mark the shop for replanning
    (not when there was nothing to clear: a replan of the whole shop for nothing)."""
    if values is None or values == Overrides():
        cleared = await conn.execute(
            "DELETE FROM sku_settings WHERE shop = %s AND variant_id = %s", (shop, variant_id)
        )
        if not cleared.rowcount:
            return
    else:
        params = {f.name: getattr(values, f.name) for f in fields(Overrides)}
        await conn.execute(
            f"INSERT INTO sku_settings (shop, variant_id, {_COLUMNS}) VALUES (%(shop)s,"
            " %(variant_id)s, %(lead_time_days)s, %(service_level)s, %(target_cover_days)s,"
            " %(low_stock_threshold)s)"
            " ON CONFLICT (shop, variant_id) DO UPDATE SET"
            " lead_time_days = excluded.lead_time_days, service_level = excluded.service_level,"
            " target_cover_days = excluded.target_cover_days,"
            " low_stock_threshold = excluded.low_stock_threshold, updated_at = now()",
            {"shop": shop, "variant_id": variant_id, **params},
        )
    await conn.execute(
        "INSERT INTO shop_settings (shop) VALUES (%s) ON CONFLICT (shop) DO UPDATE"
        " SET version = shop_settings.version + 1, updated_at = now()",
        (shop,),
    )


async def effective(
    conn: DictConnection, shop: str, variant_ids: Sequence[int], defaults: PlanSettings
) -> dict[int, PlanSettings]:
    """The settings each SKU's plan uses: its own, else the shop's, else ``defaults``."""
    base = (await shop_overrides(conn, shop)).over(defaults)
    cur = await conn.execute(
        f"SELECT variant_id, {_COLUMNS} FROM sku_settings WHERE shop = %s AND variant_id = ANY(%s)",
        (shop, list(variant_ids)),
    )
    own = {r["variant_id"]: _overrides(r) for r in await cur.fetchall()}
    return {v: own[v].over(base) if v in own else base for v in variant_ids}
