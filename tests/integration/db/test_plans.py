"""Forecast rounds and published updates against PostgreSQL alone (no broker, no worker)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from connectors.db import plans
from connectors.db.pool import DictConnection
from connectors.settings import Settings
from streams.forecasting import ForecastKeeper
from streams.publish import build_updates

_ids = itertools.count(int(datetime.now(UTC).timestamp() * 1000) * 1000 + 500_000)


async def _sku_with_history(conn: DictConnection, shop: str, days: int, stock: int) -> int:
    variant, item = next(_ids), next(_ids)
    today = datetime.now(UTC).date()
    async with conn.transaction():
        await conn.execute(
            "INSERT INTO variants (shop, variant_id, sku, product_title, inventory_item_id)"
            " VALUES (%s, %s, 'HIST', 'Tee', %s)",
            (shop, variant, item),
        )
        await conn.execute(
            "INSERT INTO inventory_levels (shop, inventory_item_id, location_id, available,"
            " updated_at) VALUES (%s, %s, 1, %s, now())",
            (shop, item, stock),
        )
        async with conn.cursor() as cur:
            await cur.executemany(
                "INSERT INTO daily_demand (shop, variant_id, day, units, revenue)"
                " VALUES (%s, %s, %s, %s, %s)",
                [
                    (shop, variant, today - timedelta(days=d), 3 + d % 7, 10)
                    for d in range(1, days + 1)
                ],
            )
    return variant


async def test_a_forecast_round_stores_exactly_the_plans_it_publishes(
    conn: DictConnection, shop: str
) -> None:
    variant = await _sku_with_history(conn, shop, days=60, stock=40)
    keeper = ForecastKeeper(Settings())
    ((_, published),) = await keeper.forecasts(conn, shop, [variant])
    stored = (await plans.latest(conn, shop, [variant]))[variant]
    assert stored.days_of_cover == published.days_of_cover is not None
    assert stored.stockout_date == published.stockout_date
    assert stored.members == published.members and stored.method == published.method
    assert [round(x, 2) for x in stored.mean] == published.mean
    # A newer round replaces it; an older one never does.
    older = published.model_copy(update={"as_of": "2000-01-01T00:00:00+00:00", "stock": 1})
    async with conn.transaction():
        await plans.save(conn, [older])
    assert (await plans.latest(conn, shop, [variant]))[variant].stock == 40


async def test_updates_show_the_forecast_days_of_cover_once_a_plan_exists(
    conn: DictConnection, shop: str
) -> None:
    variant = await _sku_with_history(conn, shop, days=60, stock=40)
    touched = [{"shop": shop, "variant_id": variant, "type": "stock", "event_ids": ["e"]}]
    ((_, before),) = await build_updates(conn, touched)
    assert before.days_of_cover_basis == "28-day average" and before.stockout_date is None
    ((_, plan),) = await ForecastKeeper(Settings()).forecasts(conn, shop, [variant])
    ((_, after),) = await build_updates(conn, touched)
    assert after.days_of_cover_basis == "forecast"
    assert after.days_of_cover == plan.days_of_cover
    assert after.stockout_date == plan.stockout_date
    assert after.reorder_quantity == plan.reorder_quantity


async def test_what_a_shop_was_republished_for_is_kept_until_its_state_moves_on(
    conn: DictConnection, shop: str
) -> None:
    """Kept in the database, not in the worker: a restart republished every shop serially,
    and a settings change made meanwhile waited behind them all."""
    from connectors.db import forecasts

    now, published = (await forecasts.forecast_states(conn))[shop]
    assert published is None and now[1:] == (None, 0)
    await forecasts.mark_published(conn, shop, now)
    await forecasts.mark_published(conn, "not-installed.myshopify.com", now)  # ignored
    assert (await forecasts.forecast_states(conn))[shop] == (now, now)
    await conn.execute("INSERT INTO shop_settings (shop, lead_time_days) VALUES (%s, 9)", (shop,))
    moved, published = (await forecasts.forecast_states(conn))[shop]
    assert published == now and moved[2] > now[2]
