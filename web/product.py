"""A product's page and its JSON: figures and plan, daily history with stockout days, the
forecast with its 80 % interval, recent forecast accuracy, the settings it is planned with,
and its alerts."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from litestar import Controller, Request, get
from litestar.datastructures import State
from litestar.exceptions import NotFoundException
from litestar.params import FromPath
from litestar.response import Template

from connectors.db import plans, product, shop_settings
from connectors.db.forecasts import shop_today
from connectors.db.queries import sku_rows
from connectors.zones import zone_or_utc
from web.alerts import RULE_CHOICES, AlertItem, product_alerts, shown
from web.auth import known_id, require_shop
from web.dashboard import figures

HISTORY_DAYS = 120
ALERTS_SHOWN = 50


async def product_story(state: State, shop: str, variant_id: int) -> dict[str, Any]:
    known_id(variant_id)
    defaults = shop_settings.deployment_defaults(state.settings)
    async with state.pool.connection() as conn:
        rows = await sku_rows(conn, shop, [variant_id])
        if not rows:
            raise NotFoundException("unknown product")
        today, _, _ = await shop_today(conn, shop)
        history = await product.daily_history(
            conn, shop, variant_id, today - timedelta(days=HISTORY_DAYS), today
        )
        accuracy = await product.run_accuracy(conn, shop, variant_id, today)
        plan = (await plans.latest(conn, shop, [variant_id])).get(variant_id)
        settings = (await shop_settings.effective(conn, shop, [variant_id], defaults))[variant_id]
        own = (await shop_settings.product_overrides(conn, shop)).get(variant_id)
        alerts = await product_alerts(conn, shop, variant_id, ALERTS_SHOWN)
        await conn.commit()
    (row,) = figures(rows)
    return {
        "product": row.model_dump(mode="json"),
        "today": today.isoformat(),
        "history": [
            {"day": h["day"].isoformat(), "units": int(h["units"]), "stockout": h["stockout"]}
            for h in history
        ],
        "forecast": None
        if plan is None
        else {
            "first_day": plan.first_day,
            "mean": plan.mean,
            "lower": plan.lower,
            "upper": plan.upper,
            "method": plan.method,
            "members": [m.model_dump(mode="json") for m in plan.members],
            "season": plan.season,
            "confidence": plan.confidence,
        },
        "accuracy": accuracy,
        "settings": dict(vars(settings)),
        "own_settings": None if own is None else dict(vars(own)),
        # The latest first, as the API's alerts list shows them.
        "alerts": [a.model_dump(mode="json") for a in alerts],
    }


def blend_shares(weights: dict[str, float]) -> list[dict[str, Any]]:
    """The blend's weights as whole percentages that add up to 100 (largest remainder), the
    largest first; a member under half a percent is left out rather than shown at 0 %."""
    total = sum(weights.values())
    if total <= 0:
        return []
    exact = {m: 100 * w / total for m, w in weights.items()}
    whole = {m: int(x) for m, x in exact.items()}
    short = 100 - sum(whole.values())
    for m in sorted(exact, key=lambda m: whole[m] - exact[m])[:short]:
        whole[m] += 1
    ranked = sorted(whole.items(), key=lambda mw: -exact[mw[0]])
    return [{"model": m, "percent": pct} for m, pct in ranked if pct > 0]


class ProductController(Controller):
    @get("/shops/{shop_domain:str}/products/{variant_id:int}", include_in_schema=False)
    async def page(
        self,
        request: Request[Any, Any, Any],
        state: State,
        shop_domain: FromPath[str],
        variant_id: FromPath[int],
    ) -> Template:
        caller, shop, role = await require_shop(request, shop_domain)
        story = await product_story(state, shop_domain, variant_id)
        zone = zone_or_utc(shop.get("timezone"))
        alert_rows = [shown(AlertItem.model_validate(a), zone) for a in story["alerts"]]
        forecast = story["forecast"]
        return Template(
            "product.html",
            context={
                **story,
                "alert_rows": alert_rows,
                # The page's wording of the blend; the API gives the weights themselves.
                "blend": blend_shares({m["model"]: m["weight"] for m in forecast["members"]})
                if forecast
                else [],
                "alerts_shown": ALERTS_SHOWN,
                # For product.js, which adds the feed's alerts to the history as they fire.
                "rule_titles": dict(RULE_CHOICES),
                "timezone": zone.key,
                "shop": shop,
                "caller": caller,
                "role": role,
            },
        )

    @get("/api/v1/shops/{shop_domain:str}/products/{variant_id:int}")
    async def read(
        self,
        request: Request[Any, Any, Any],
        state: State,
        shop_domain: FromPath[str],
        variant_id: FromPath[int],
    ) -> dict[str, Any]:
        await require_shop(request, shop_domain)
        return {"shop": shop_domain, **await product_story(state, shop_domain, variant_id)}
