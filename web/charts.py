"""The dashboard's two charts, as JSON: units sold per day with the forecast ahead, and stock
per product coloured by days of cover. ``web/static/charts.js`` draws them and fetches them
again when the feed says a sale, a stock level or a forecast changed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any, Literal

from litestar import Controller, Request, get
from litestar.datastructures import State
from litestar.exceptions import NotFoundException, ValidationException
from litestar.params import FromPath, Parameter

from connectors.db import charts, shop_settings
from connectors.db.charts import ProductSku
from connectors.kafka.topics import CoverBasis, SkuFigures
from web.auth import require_shop

# The table's own threshold and derivation of each SKU's days of cover, so a product's colour
# never disagrees with its rows.
from web.dashboard import LOW_COVER_DAYS, figures

SALES_DAYS = 90
SALES_MIN_DAYS, SALES_MAX_DAYS = 7, 730
STOCK_PRODUCTS = 30
STOCK_MIN_PRODUCTS, STOCK_MAX_PRODUCTS = 1, 200

CoverColour = Literal["red", "amber", "green"]


@dataclass(frozen=True)
class ProductStock:
    """A product's bar: its stock over all its variants, and the cover of the variant that runs
    out first (``runs_out_first``), which is when the product starts losing sales."""

    product_id: int | None
    title: str
    stock: int
    days_of_cover: float | None
    days_of_cover_basis: CoverBasis | None
    runs_out_first: SkuFigures | None
    variants: int


def cover_colour(days_of_cover: float | None, lead_time_days: float) -> CoverColour:
    """Red under ``LOW_COVER_DAYS``, amber while a reorder placed now would arrive after the
    stock is gone, green otherwise (and when it never runs out).

    >>> [cover_colour(d, 14) for d in (0, 6.9, 7, 13.9, 14, None)]
    ['red', 'red', 'amber', 'amber', 'green', 'green']
    """
    if days_of_cover is None:
        return "green"
    if days_of_cover < LOW_COVER_DAYS:
        return "red"
    if days_of_cover < lead_time_days:
        return "amber"
    return "green"


def products_by_cover(skus: Sequence[ProductSku]) -> list[ProductStock]:
    """Products with tracked stock, the lowest days of cover first (those that never run out
    last), then the least stock.

    A product's days of cover is its first variant to run out, not its stock over its demand:
    pooling would let plenty of size L hide that size M is gone.
    """
    derived = figures([s.row for s in skus])
    grouped: dict[int | str, list[tuple[ProductSku, SkuFigures]]] = {}
    for sku, sku_figures in zip(skus, derived, strict=True):
        # A variant known only from an order line may have no product yet: it stands alone.
        key = sku.row.product_id if sku.row.product_id is not None else f"v{sku.row.variant_id}"
        grouped.setdefault(key, []).append((sku, sku_figures))
    products = []
    for members in grouped.values():
        tracked = [(s, f) for s, f in members if f.stock is not None]
        if not tracked:
            continue  # nothing to draw: Shopify tracks no stock of it
        covered = [f for _, f in tracked if f.days_of_cover is not None]
        first_out = min(covered, key=lambda f: f.days_of_cover or 0.0) if covered else None
        lead, lead_figures = members[0]
        products.append(
            ProductStock(
                product_id=lead.row.product_id,
                title=lead.product_title or lead_figures.title or lead_figures.sku or "—",
                stock=sum(f.stock or 0 for _, f in tracked),
                days_of_cover=first_out.days_of_cover if first_out else None,
                days_of_cover_basis=first_out.days_of_cover_basis if first_out else None,
                runs_out_first=first_out,
                variants=len(members),
            )
        )
    products.sort(
        key=lambda p: (
            p.days_of_cover is None,
            p.days_of_cover or 0.0,
            p.stock,
            p.title,
            str(p.product_id),
        )
    )
    return products


def _check_range(name: str, value: int, low: int, high: int) -> None:
    # Checked after require_shop, so a caller who may not see the shop learns nothing more
    # from a bad parameter than from a good one.
    if not low <= value <= high:
        raise ValidationException(
            f"{name} must be from {low} to {high}, not {value}",
            extra=[{"key": name, "source": "query", "message": f"from {low} to {high}"}],
        )


class ChartsController(Controller):
    path = "/api/v1/shops/{shop_domain:str}/charts"

    @get("/sales")
    async def sales(
        self,
        request: Request[Any, Any, Any],
        state: State,
        shop_domain: FromPath[str],
        days: Annotated[
            int, Parameter(description="Shop-local days of history, today included")
        ] = SALES_DAYS,
        variant_id: Annotated[
            int | None, Parameter(gt=0, description="One SKU instead of the whole shop")
        ] = None,
    ) -> dict:
        """Units sold per shop-local day over the last ``days`` days (0 on days without
        sales), and the forecast from today on: the latest plans' mean and 80 % band, summed
        over the shop's SKUs (see ``connectors/db/charts.py`` for how the bands combine)."""
        await require_shop(request, shop_domain)
        _check_range("days", days, SALES_MIN_DAYS, SALES_MAX_DAYS)
        async with state.pool.connection() as conn:
            if variant_id is not None and not await charts.variant_known(
                conn, shop_domain, variant_id
            ):
                raise NotFoundException("unknown variant")
            shop_day = await charts.shop_day(conn, shop_domain)
            today = shop_day.today
            sold = await charts.units_per_day(
                conn, shop_domain, today - timedelta(days=days - 1), today, variant_id
            )
            ahead = await charts.forecast_ahead(conn, shop_domain, today, variant_id)
        return {
            "shop": shop_domain,
            "variant_id": variant_id,
            "timezone": shop_day.timezone,
            "today": today.isoformat(),
            "actual": {
                "days": [day.isoformat() for day, _ in sold],
                "units": [units for _, units in sold],
            },
            "forecast": {
                "days": [f.day.isoformat() for f in ahead],
                "mean": [round(f.mean, 2) for f in ahead],
                "lower": [round(f.lower, 2) for f in ahead],
                "upper": [round(f.upper, 2) for f in ahead],
                "skus": ahead[0].skus if ahead else 0,
                "interval": 0.8,
            },
        }

    @get("/stock")
    async def stock(
        self,
        request: Request[Any, Any, Any],
        state: State,
        shop_domain: FromPath[str],
        limit: Annotated[
            int, Parameter(description="Products to return, the lowest days of cover first")
        ] = STOCK_PRODUCTS,
    ) -> dict:
        """Stock per product (summed over its variants) with its days of cover and colour,
        the lowest cover first."""
        await require_shop(request, shop_domain)
        _check_range("limit", limit, STOCK_MIN_PRODUCTS, STOCK_MAX_PRODUCTS)
        defaults = shop_settings.deployment_defaults(state.settings)
        async with state.pool.connection() as conn:
            skus = await charts.skus_with_products(conn, shop_domain)
            products = products_by_cover(skus)
            # Amber is "runs out before a reorder placed today arrives": the lead time of the
            # variant that runs out first, its own or its shop's.
            planned = await shop_settings.effective(
                conn,
                shop_domain,
                [p.runs_out_first.variant_id for p in products if p.runs_out_first],
                defaults,
            )
            shop_lead = (await shop_settings.shop_overrides(conn, shop_domain)).over(defaults)
        lead_time_days = shop_lead.lead_time_days

        def lead_of(p: Any) -> float:
            first = p.runs_out_first
            return planned[first.variant_id].lead_time_days if first else lead_time_days

        return {
            "shop": shop_domain,
            "low_cover_days": LOW_COVER_DAYS,
            "lead_time_days": lead_time_days,
            "products_total": len(products),
            "products": [
                {
                    "product_id": p.product_id,
                    "title": p.title,
                    "stock": p.stock,
                    "days_of_cover": p.days_of_cover,
                    "days_of_cover_basis": p.days_of_cover_basis,
                    "colour": cover_colour(p.days_of_cover, lead_of(p)),
                    "variants": p.variants,
                    "runs_out_first": None
                    if p.runs_out_first is None
                    else {
                        "variant_id": p.runs_out_first.variant_id,
                        "sku": p.runs_out_first.sku,
                        "title": p.runs_out_first.title,
                    },
                }
                for p in products[:limit]
            ],
        }
