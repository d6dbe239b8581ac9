"""Keep every SKU's online model current and turn it into the forecast a merchant sees.

Models are cached in memory and persisted in ``sku_models`` whenever they learn a day, so a
restarted worker loads them instead of relearning; a SKU with no stored model (or one stored
by an incompatible version) is rebuilt from its stored daily demand. A day is learned once it
has closed in the shop's time zone; sales today feed the nowcast instead. A change to a
closed day's demand (a refund, an order webhook hours late) leaves a note in
``demand_corrections`` (a trigger on ``daily_demand``), and a model that already learned that
day is rebuilt from the corrected history.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np

from connectors.db import forecasts as db
from connectors.db import plans, shop_settings
from connectors.db.pool import DictConnection
from connectors.db.queries import sku_rows
from connectors.kafka.topics import BlendMember, ForecastUpdate, sku_key
from connectors.settings import Settings
from models.combined import HORIZON, Baseline, confidence, live_forecast
from models.ensemble import WHOLE_UNIT_SLACK, daily_sd
from models.inventory import in_stock_days
from models.online import LEARN_DAYS, OnlineDemandModel, nowcast
from models.policy import ABC_WINDOW_DAYS, abc_classes, inventory_plan

log = logging.getLogger("stockpulse.forecasting")
ABC_REFRESH_S = 3600.0
Z_80 = 1.2816  # half-width of an 80 % normal interval, in standard deviations


class ForecastKeeper:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # The deployment's defaults; a shop's settings and a product's overrides come first.
        self.defaults = shop_settings.deployment_defaults(settings)
        self._models: dict[tuple[str, int], OnlineDemandModel] = {}
        self._runs: dict[str, int | None] = {}
        self._baselines: dict[tuple[str, int], dict[str, Any] | None] = {}
        # The last closed day a SKU's history was read up to, for models that learned nothing.
        self._looked_until: dict[tuple[str, int], date] = {}
        self._abc: dict[str, tuple[date, float, dict[int, str]]] = {}

    async def forecasts(
        self,
        conn: DictConnection,
        shop: str,
        variant_ids: Sequence[int] | None = None,
        *,
        commit: bool = True,
    ) -> list[tuple[bytes, ForecastUpdate]]:
        """Bring the SKUs' models up to the last closed day, build their forecasts and store
        them as the SKUs' plans; with ``commit`` False the caller commits the plans (and what
        it wrote with them)."""
        today, elapsed, _ = await db.shop_today(conn, shop)
        rows = await sku_rows(conn, shop, variant_ids)
        if not rows:
            await conn.commit()
            return []
        ids = [r.variant_id for r in rows]
        models = await self._current_models(conn, shop, ids, today - timedelta(days=1))
        baselines = await self._current_baselines(conn, shop, ids)
        classes = await self._abc_classes(conn, shop, today)
        planned_with = await shop_settings.effective(conn, shop, ids, self.defaults)
        now = datetime.now(UTC).isoformat()
        out = []
        for row in rows:
            base = baselines.get(row.variant_id)
            baseline = (
                Baseline(
                    base["first_day"],
                    np.asarray(base["mean"], dtype=float),
                    np.asarray(base["lower"], dtype=float),
                    np.asarray(base["upper"], dtype=float),
                )
                if base
                else None
            )
            model = models[row.variant_id]
            live = live_forecast(model, baseline, today, HORIZON, float(row.sold_today))
            mean = live.forecast.mean.copy()
            lower = live.forecast.lower.copy()
            upper = live.forecast.upper.copy()
            mean[0] = nowcast(mean[0], row.sold_today, elapsed)
            lower[0] = nowcast(lower[0], row.sold_today, elapsed)
            upper[0] = nowcast(upper[0], row.sold_today, elapsed)
            still_to_sell = mean.copy()
            still_to_sell[0] = max(mean[0] - row.sold_today, 0.0)
            stock = row.stock if row.stock is not None else 0
            season = _season(live.method, base, today, HORIZON)
            last_sale = today if row.sold_today > 0 else model.last_sale
            plan = inventory_plan(
                stock,
                still_to_sell.tolist(),
                _daily_sd(live.method, base, mean, lower, upper, season).tolist(),
                lead_time_days=planned_with[row.variant_id].lead_time_days,
                service_level=planned_with[row.variant_id].service_level,
                target_cover_days=planned_with[row.variant_id].target_cover_days,
                overstock_days=self.settings.overstock_days,
                days_since_last_sale=(today - last_sale).days if last_sale else None,
                days_on_sale=model.days_learned,
            )
            stockout = plan.stockout_day_index
            accuracy = _accuracy(live.method, base, models[row.variant_id])
            update = ForecastUpdate(
                shop=shop,
                variant_id=row.variant_id,
                sku=row.sku,
                first_day=today.isoformat(),
                mean=_rounded(mean),
                # Units sell whole: every published lower bound is whole (the nightly blend's
                # are; the fallbacks' and today's nowcast were not, an outside test found).
                lower=_rounded(np.floor(np.maximum(lower, 0) + WHOLE_UNIT_SLACK)),
                upper=_rounded(upper),
                method=live.method,  # type: ignore[arg-type]
                members=_members(live.method, base, self._runs.get(shop)),
                season=season,
                confidence=confidence(live.method, accuracy),  # type: ignore[arg-type]
                mase=accuracy,
                stock=row.stock,
                days_of_cover=(
                    None
                    if row.stock is None or plan.days_of_cover is None
                    else round(plan.days_of_cover, 1)
                ),
                stockout_date=(
                    (today + timedelta(days=stockout)).isoformat()
                    if stockout is not None and row.stock is not None
                    else None
                ),
                safety_stock=round(plan.safety_stock, 1),
                reorder_point=round(plan.reorder_point, 1),
                reorder_quantity=plan.reorder_quantity if row.stock is not None else 0,
                overstock=plan.overstock if row.stock is not None else False,
                dead_stock_days=plan.dead_stock_days if row.stock is not None else None,
                # No revenue in the window is the Pareto tail.
                abc_class=classes.get(row.variant_id, "C"),
                as_of=now,
            )
            out.append((sku_key(shop, str(row.variant_id)), update))
        # Stored in the same transaction that read its inputs: what is published is what the
        # dashboard, the API and alert rules read afterwards.
        await plans.save(conn, [update for _, update in out])
        if commit:
            await conn.commit()
        return out

    async def _current_models(
        self, conn: DictConnection, shop: str, ids: list[int], last_closed: date
    ) -> dict[int, OnlineDemandModel]:
        # An online model cannot unlearn a day, so one that learned a day corrected since
        # (a refund, an order webhook hours late) is rebuilt from the stored demand.
        rebuild = set()
        corrections = await db.take_corrections(conn, shop, ids)
        classed = self._abc.get(shop, (None, 0.0, {}))[2]
        if any(v not in classed for v in corrections):
            # Past revenue of a SKU without a class yet: rank again now. Refunds of classed
            # SKUs come every day and wait for the hourly ranking rather than cost one each.
            self._abc.pop(shop, None)
        for variant_id, day in corrections.items():
            cached = self._models.get((shop, variant_id))
            if cached is None or (cached.last_day is not None and day <= cached.last_day):
                rebuild.add(variant_id)
                self._models.pop((shop, variant_id), None)
            self._looked_until.pop((shop, variant_id), None)  # its first sale may be earlier
        missing = [v for v in ids if (shop, v) not in self._models]
        loadable = [v for v in missing if v not in rebuild]
        if loadable:
            for variant_id, blob in (await db.load_models(conn, shop, loadable)).items():
                try:
                    self._models[(shop, variant_id)] = OnlineDemandModel.from_bytes(blob)
                except Exception:
                    log.warning("rebuilding the unreadable model of %s/%s", shop, variant_id)
        for variant_id in missing:
            self._models.setdefault((shop, variant_id), OnlineDemandModel())
        # Models with nothing learned yet learn from the SKU's first sale; a SKU that has never
        # sold is looked up once per closed day, not on every batch that touches it.
        from_first_sale = [
            v
            for v in ids
            if self._models[(shop, v)].last_day is None
            and self._looked_until.get((shop, v)) != last_closed
        ]
        if from_first_sale:
            histories = await db.demand_history(
                conn,
                shop,
                last_closed,
                from_first_sale,
                since=last_closed - timedelta(days=LEARN_DAYS - 1),
            )
            await self._learn(conn, shop, histories, must_save=rebuild)
            for variant_id in from_first_sale:
                self._looked_until[(shop, variant_id)] = last_closed
        # Models that learned some days but not the ones closed since.
        learned_until = {v: self._models[(shop, v)].last_day for v in ids}
        stale = [v for v, last in learned_until.items() if last is not None and last < last_closed]
        if stale:
            since = min(d for v in stale if (d := learned_until[v]) is not None)
            histories = await db.demand_history(
                conn, shop, last_closed, stale, first=since + timedelta(days=1)
            )
            await self._learn(conn, shop, histories)
        return {v: self._models[(shop, v)] for v in ids}

    async def _learn(
        self,
        conn: DictConnection,
        shop: str,
        histories: dict[int, db.DemandHistory],
        must_save: set[int] | frozenset[int] = frozenset(),
    ) -> None:
        """Learn the days each model has not; store every model that changed, and the
        ``must_save`` ones even unchanged (a rebuilt model replaces its stored one)."""
        changed = set(must_save)
        for variant_id, history in histories.items():
            model = self._models[(shop, variant_id)]
            sellable = in_stock_days(history.units, history.first_day, history.stock_levels)
            for i in range(history.units.size):
                day = history.day(i)
                if model.last_day is None or day > model.last_day:
                    model.learn_day(day, float(history.units[i]), bool(sellable[i]))
                    changed.add(variant_id)
        if changed:
            await db.save_models(
                conn,
                shop,
                [
                    (v, m.to_bytes(), m.last_day, m.days_learned)
                    for v in changed
                    for m in [self._models[(shop, v)]]
                ],
            )
            await conn.commit()

    async def _abc_classes(self, conn: DictConnection, shop: str, today: date) -> dict[int, str]:
        """A slow-moving ranking, so worked out again hourly, on a new shop-local day, or when
        an unclassed SKU gained past revenue."""
        cached = self._abc.get(shop)
        if cached is None or cached[0] != today or time.monotonic() - cached[1] > ABC_REFRESH_S:
            cached = self._abc[shop] = (
                today,
                time.monotonic(),
                await abc_ranking(conn, shop, today),
            )
        return cached[2]

    async def _current_baselines(
        self, conn: DictConnection, shop: str, ids: list[int]
    ) -> dict[int, dict[str, Any] | None]:
        run = await db.current_run(conn, shop)
        if self._runs.get(shop) != run:
            self._runs[shop] = run
            for key in [k for k in self._baselines if k[0] == shop]:
                del self._baselines[key]
        missing = [v for v in ids if (shop, v) not in self._baselines]
        if missing:
            found = await db.run_forecasts(conn, run, missing) if run is not None else {}
            for v in missing:
                self._baselines[(shop, v)] = found.get(v)
        return {v: self._baselines[(shop, v)] for v in ids}


async def abc_ranking(conn: DictConnection, shop: str, today: date) -> dict[int, str]:
    """Each SKU's ABC class by revenue over the ABC_WINDOW_DAYS before ``today``."""
    revenue = await db.revenue_by_sku(conn, shop, today - timedelta(days=ABC_WINDOW_DAYS))
    classes = abc_classes({str(v): r for v, r in revenue.items()})
    return {int(v): c for v, c in classes.items()}


def _members(method: str, base: dict[str, Any] | None, run_id: int | None) -> list[BlendMember]:
    """What made a forecast of ``method`` (see models.combined), with each member's weight: for
    a combined forecast, the blend its nightly run chose for this SKU."""
    if method == "combined" and base is not None:
        weights = base.get("weights") or {base["model"]: 1.0}
        return [
            BlendMember(model=m, weight=round(float(w), 4), run_id=run_id)
            for m, w in sorted(weights.items(), key=lambda kv: -kv[1])
            if w > 0
        ]
    return [BlendMember(model=method, weight=1.0)]


def _season(
    method: str, base: dict[str, Any] | None, today: date, horizon: int
) -> list[float] | None:
    """What last year's year-end season did to a combined forecast, from ``today`` on (one
    past the run's days); None when it did nothing there."""
    if method != "combined" or base is None or not base.get("season"):
        return None
    start = (today - base["first_day"]).days
    ahead = [round(float(x), 3) for x in base["season"][start : start + horizon]]
    ahead += [1.0] * (horizon - len(ahead))
    return ahead if any(abs(x - 1) >= 0.005 for x in ahead) else None


def _accuracy(method: str, base: dict[str, Any] | None, model: OnlineDemandModel) -> float | None:
    """How the model behind the forecast has done on this SKU: the nightly runs' record for a
    combined forecast, the online model's own one for a River one, nothing for the fallback."""
    if method == "combined":
        value = base["mase"] if base else None
    elif method == "river":
        value = model.mase()
    else:
        value = None
    return None if value is None else round(value, 3)


def _daily_sd(
    method: str,
    base: dict[str, Any] | None,
    mean: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    season: list[float] | None,
) -> np.ndarray:
    """Each day's uncertainty for safety stock: for a combined forecast, the SKU's spread,
    measured on its blend's own errors (Poisson-like until it has one; its band cannot say:
    a slow seller's is [0, 80th percentile]), scaled with the year-end season as the band is;
    for the others, the width of their normal 80 % band. A day whose band is [0, 0] (the
    shop is closed) has none."""
    if method == "combined" and base is not None:
        spread = base.get("spread")
        sd = daily_sd(
            mean,
            None if spread is None else float(spread),
            None if season is None else np.asarray(season, dtype=float),
        )
        return np.where(upper > 0, sd, 0.0)
    return (upper - lower) / (2 * Z_80)


def _rounded(values: np.ndarray) -> list[float]:
    return [round(float(x), 2) for x in values]
