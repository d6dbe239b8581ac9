"""Alert rules, run on every SKU whose plan a forecast round just made.

Called in the round's transaction (:func:`streams.forecast_publishing`), after the plans are
stored and before the commit: an alert, its deliveries (one per recipient, the outbox the
sender works from) and the triggers that say it fired all commit with the plan they were read
from, or none of them does. After the commit the round publishes the alerts on
``stockpulse.alerts``, which the web app fans out to the shop's WebSocket feeds as banners; a
timer republishes any a crashed worker committed but never published.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

import faust

from connectors.db import alerts as db
from connectors.db import backfills, shop_settings
from connectors.db.pool import DictConnection
from connectors.kafka.topics import AlertMessage, ForecastUpdate, dumps, shop_key
from connectors.outages import log_failure
from connectors.settings import Settings
from models.alerts import (
    DIGEST_ONLY,
    SEVERITY,
    Rule,
    Situation,
    Trigger,
    cover_days,
    headline,
    read_rules,
    reorder_by,
    step,
)
from streams.context import WorkerContext, send_all

log = logging.getLogger("stockpulse.alerts")

REPUBLISH_EVERY_S = 5.0
# A round publishes its alerts right after its commit; older than this, nobody will.
REPUBLISH_AFTER_S = 20.0


async def evaluate(
    conn: DictConnection,
    shop: str,
    plans: Sequence[ForecastUpdate],
    settings: Settings,
    defaults: shop_settings.PlanSettings,
    now: datetime | None = None,
) -> list[db.FiredAlert]:
    """Run the shop's rules over ``plans`` in the caller's transaction; the alerts that fired."""
    planned = [p for p in plans if p.stock is not None]
    if not planned:
        return []
    now = now or datetime.now(UTC)
    config = await db.settings_of(conn, shop)
    rules = [r for r in Rule if r.value in config.rules]
    # Plans made from half a history would cry wolf (no demand yet reads as overstock, a
    # product sold for years as dead stock). Once the import is done its refit replans every
    # SKU, and the rules run on those plans.
    if not rules or await backfills.importing(conn, shop):
        return []
    await db.lock_shop(conn, shop)
    ids = [p.variant_id for p in planned]
    planned_with = await shop_settings.effective(conn, shop, ids, defaults)
    stored = await db.triggers(conn, shop, ids)
    known = (
        await db.days_known(conn, shop, [p.variant_id for p in planned if p.dead_stock_days])
        if Rule.DEAD_STOCK in rules
        else {}
    )
    cooldown = timedelta(hours=config.cooldown_hours)
    changed: dict[tuple[int, str], db.StoredTrigger] = {}
    new: list[db.NewAlert] = []
    for plan in planned:
        with_settings = planned_with[plan.variant_id]
        situation = Situation(
            stock=plan.stock,
            days_of_cover=plan.days_of_cover,
            reorder_point=plan.reorder_point,
            overstock=plan.overstock,
            dead_stock_days=plan.dead_stock_days,
            lead_time_days=with_settings.lead_time_days,
            low_stock_threshold=with_settings.low_stock_threshold,
            stockout_within_days=config.stockout_within_days,
            overstock_days=settings.overstock_days,
            days_known=known.get(plan.variant_id),
        )
        for rule, reading in read_rules(situation, rules).items():
            key = (plan.variant_id, rule.value)
            before = stored.get(key)
            trigger = Trigger(before.armed, before.last_fired_at) if before else Trigger()
            after, fired = step(trigger, reading, now, cooldown)
            if after != trigger:
                changed[key] = db.StoredTrigger(after.armed, after.last_fired_at)
            if fired:
                new.append(
                    db.NewAlert(
                        variant_id=plan.variant_id,
                        rule=rule.value,
                        severity=SEVERITY[rule],
                        digest_only=rule in DIGEST_ONLY,
                        fired_at=now,
                        figures=_figures(plan, situation),
                    )
                )
    await db.save_triggers(conn, shop, changed)
    if not new:
        return []
    titles = await _titles(conn, shop, sorted({a.variant_id for a in new}))
    for alert in new:
        alert.figures["title"] = titles.get(alert.variant_id)
    recorded = await db.record(conn, shop, new, config.mode)
    log.info("%s: %d alert(s) fired", shop, len(recorded))
    return recorded


def _figures(plan: ForecastUpdate, s: Situation) -> dict[str, object]:
    today = date.fromisoformat(plan.first_day)
    stockout = date.fromisoformat(plan.stockout_date) if plan.stockout_date else None
    by = reorder_by(today, stockout, s.lead_time_days)
    return {
        "sku": plan.sku,
        "stock": plan.stock,
        "days_of_cover": cover_days(plan.days_of_cover),
        "stockout_date": plan.stockout_date,
        "reorder_point": plan.reorder_point,
        "reorder_quantity": plan.reorder_quantity,
        "reorder_by": by.isoformat() if by else None,
        "lead_time_days": s.lead_time_days,
        "low_stock_threshold": s.low_stock_threshold,
        "stockout_within_days": s.stockout_within_days,
        # A whole number of days as one (180, not 180.0), like the other day counts.
        "overstock_days": int(s.overstock_days)
        if float(s.overstock_days).is_integer()
        else s.overstock_days,
        "dead_stock_days": plan.dead_stock_days,
        "shop_today": plan.first_day,
    }


async def _titles(conn: DictConnection, shop: str, ids: list[int]) -> dict[int, str]:
    cur = await conn.execute(
        "SELECT variant_id, concat_ws(' / ', product_title, nullif(variant_title,"
        " 'Default Title')) AS title FROM variants WHERE shop = %s AND variant_id = ANY(%s)",
        (shop, ids),
    )
    return {r["variant_id"]: r["title"] for r in await cur.fetchall()}


def message(alert: db.FiredAlert, base_url: str) -> AlertMessage:
    """The public message of an alert (Kafka and the WebSocket feed)."""
    path = f"/shops/{alert.shop}/products/{alert.variant_id}"
    return AlertMessage(
        id=alert.id,
        shop=alert.shop,
        variant_id=alert.variant_id,
        sku=alert.figures.get("sku"),
        title=alert.figures.get("title"),
        rule=alert.rule,  # type: ignore[arg-type]
        severity=alert.severity,  # type: ignore[arg-type]
        headline=headline(Rule(alert.rule), alert.figures),
        digest_only=alert.digest_only,
        fired_at=alert.fired_at.isoformat(),
        product_url=f"{base_url.rstrip('/')}{path}",
        figures=alert.figures,
    )


async def publish(ctx: WorkerContext, fired: Sequence[db.FiredAlert]) -> None:
    """Publish committed alerts, then note them published. A failure is left to the timer."""
    if not fired:
        return
    base = ctx.settings.stockpulse_base_url
    await send_all(ctx.topics.alerts, [(shop_key(a.shop), dumps(message(a, base))) for a in fired])
    async with ctx.connection() as conn:
        await db.mark_published(conn, [a.id for a in fired])
        await conn.commit()


def register(app: faust.App, ctx: WorkerContext) -> None:
    @app.timer(interval=REPUBLISH_EVERY_S)
    async def republish_alerts() -> None:
        """Publish alerts a crashed worker committed but never published."""
        try:
            async with ctx.connection() as conn:
                left = await db.unpublished(conn, REPUBLISH_AFTER_S)
                await conn.commit()
            if left:
                await publish(ctx, left)
                log.info("published %d alert(s) left unpublished", len(left))
        except Exception:
            log_failure(log, "republishing alerts failed; will retry")
