"""Publish forecasts on ``stockpulse.forecasts``: after batches, and when a shop's day turns.

Off the apply path: a batch's updates never wait for forecasts. The ``publish_forecasts`` task
pays what the last batches owe (``ctx.forecasts_owed``); the ``refresh_forecasts`` timer
republishes a shop's forecasts when its local day closes or a nightly run commits, and retries
what a failed round still owes. The forecasts themselves come from
:class:`streams.forecasting.ForecastKeeper`.
"""

from __future__ import annotations

import asyncio
import logging

import faust
import psycopg

from connectors.db import forecasts as db
from connectors.db import plans, queries
from connectors.kafka.topics import dumps
from connectors.outages import log_failure
from streams import alerting
from streams.context import WorkerContext, send_all

log = logging.getLogger("stockpulse.worker")

# What one SKU's figures can make fail for good (a value its plan's columns cannot hold, a
# forecast the models cannot make of it): the SKU is isolated and the rest planned. Anything
# else (the database or the broker away) fails the round, which is retried whole.
UNPLANNABLE: tuple[type[Exception], ...] = (
    psycopg.DataError,
    psycopg.IntegrityError,
    psycopg.ProgrammingError,
    ArithmeticError,
    ValueError,
    TypeError,
)

# Gathering a short while first makes one round of queries serve the SKUs of many small
# batches, and a SKU changed twice is forecast once.
FORECAST_GATHER_S = 0.25


def register(app: faust.App, ctx: WorkerContext) -> None:
    @app.task
    async def publish_forecasts() -> None:
        """Forecasts for the SKUs the last batches changed."""
        while True:
            await ctx.forecasts_wanted.wait()
            await asyncio.sleep(FORECAST_GATHER_S)
            ctx.forecasts_wanted.clear()
            await _pay_forecasts_owed(ctx)

    @app.timer(interval=ctx.settings.stockpulse_forecast_check_s)
    async def refresh_forecasts() -> None:
        """Republish a shop's forecasts when its day closes, a nightly run commits or its
        settings change, and pay any forecasts a failed refresh still owes."""
        try:
            await _pay_forecasts_owed(ctx)
            await _republish_due(ctx, budget_s=ctx.settings.stockpulse_forecast_check_s)
        except Exception:
            log_failure(log, "refreshing forecasts failed; will retry")


# Shops due for a republish go in this order: a merchant who changed a setting is looking
# at the page, a committed run changes the forecast itself, a closed day only moves it on.
SETTINGS_CHANGED, RUN_COMMITTED, DAY_CLOSED = range(3)

# While shops are being republished, how often the list of due shops is read again, so a
# settings change made meanwhile goes next rather than after every shop whose day closed.
REREAD_DUE_S = 1.0


def _urgency(now: db.ForecastState, published: db.ForecastState | None) -> int | None:
    if published == now:
        return None
    if published is None:
        return DAY_CLOSED
    if published[2] != now[2]:
        return SETTINGS_CHANGED
    if published[1] != now[1]:
        return RUN_COMMITTED
    return DAY_CLOSED


def due_in_order(
    states: dict[str, tuple[db.ForecastState, db.ForecastState | None]], skipped: set[str]
) -> list[tuple[str, db.ForecastState]]:
    """The shops whose forecasts are due for a republish, most urgent first."""
    due = sorted(
        (urgency, shop, now)
        for shop, (now, published) in states.items()
        if shop not in skipped and (urgency := _urgency(now, published)) is not None
    )
    return [(shop, now) for _, shop, now in due]


async def _republish_due(ctx: WorkerContext, budget_s: float) -> None:
    """Republish the shops whose state moved on since their last republish, most urgent
    first, for up to about ``budget_s``; the next check goes on with the rest. What was
    republished is recorded, so a restarted worker republishes only what changed."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + budget_s
    skipped: set[str] = set()
    failures = 0
    while loop.time() < deadline:
        async with ctx.connection() as conn:
            states = await db.forecast_states(conn)
            await conn.commit()
        due = due_in_order(states, skipped)
        if not due:
            return
        read_at = loop.time()
        for shop, now in due:
            try:
                count = await _publish_isolating(ctx, shop, None)
                async with ctx.connection() as conn:
                    await db.mark_published(conn, shop, now)
                    await conn.commit()
            except LookupError:
                skipped.add(shop)  # uninstalled meanwhile
                continue
            except Exception:
                # One shop's failure does not hold back the others; the database or broker
                # being away fails them all, and the next check retries.
                log_failure(log, "republishing the forecasts of %s failed; will retry", shop)
                skipped.add(shop)
                failures += 1
                if failures > 2:
                    return
                continue
            log.info("republished %d forecasts of %s", count, shop)
            if loop.time() - read_at > REREAD_DUE_S or loop.time() >= deadline:
                break


async def _publish_shop_forecasts(
    ctx: WorkerContext, shop: str, variant_ids: list[int] | None
) -> int:
    """Forecasts of the shop's SKUs (all of them when ``variant_ids`` is None); how many."""
    async with ctx.forecast_round, ctx.connection() as conn:
        messages = await ctx.keeper.forecasts(conn, shop, variant_ids, commit=False)
        # The plans and the alerts read from them commit together.
        fired = await alerting.evaluate(
            conn, shop, [update for _, update in messages], ctx.settings, ctx.keeper.defaults
        )
        await conn.commit()
        # A delete that committed while the round fitted has published its removal, the SKU's
        # last word: a plan after it told consumers the SKU was back (a CI run saw one).
        gone = {
            v
            for v, _ in await queries.removed_skus(conn, shop, [u.variant_id for _, u in messages])
        }
        await conn.commit()
    messages = [(key, update) for key, update in messages if update.variant_id not in gone]
    await send_all(ctx.topics.forecasts, [(key, dumps(update)) for key, update in messages])
    await alerting.publish(ctx, fired)
    return len(messages)


async def _publish_isolating(ctx: WorkerContext, shop: str, variant_ids: list[int] | None) -> int:
    """:func:`_publish_shop_forecasts`, but a SKU whose plan can never be made fails alone:
    the SKUs are halved until it is found, every other one is planned, and it is recorded in
    ``plan_failures`` with its reason (one bad SKU used to freeze every plan of its shop)."""
    try:
        return await _publish_shop_forecasts(ctx, shop, variant_ids)
    except LookupError:
        raise
    except UNPLANNABLE as exc:
        if variant_ids is None:
            async with ctx.connection() as conn:
                variant_ids = await queries.live_variant_ids(conn, shop)
                await conn.commit()
        if len(variant_ids) > 1:
            half = len(variant_ids) // 2
            return await _publish_isolating(
                ctx, shop, variant_ids[:half]
            ) + await _publish_isolating(ctx, shop, variant_ids[half:])
        if variant_ids:
            log.error(
                "the plan of %s variant %s cannot be made; the shop's other SKUs are planned",
                shop,
                variant_ids[0],
                exc_info=exc,
            )
            async with ctx.connection() as conn:
                await plans.record_failure(
                    conn, shop, variant_ids[0], f"{type(exc).__name__}: {exc}"
                )
        return 0


async def _pay_forecasts_owed(ctx: WorkerContext) -> None:
    """Forecasts for the SKUs the last batches changed. A failure never fails the batch (its
    updates are committed and published); the SKUs stay owed and the timer retries them. The
    outbox rows that waited for them go once they are published."""
    owed = ctx.forecasts_owed
    while owed:
        shop, by_sku = owed.take_shop()
        try:
            await _publish_isolating(ctx, shop, sorted(by_sku))
        except LookupError:
            log.info("%s is no longer installed; its forecasts are not owed", shop)
        except Exception:
            owed.put_back(shop, by_sku)
            log_failure(log, "refreshing forecasts of %s failed; will retry", shop)
            return
        ctx.published.add(owed.paid(by_sku))
