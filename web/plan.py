"""The merchant's reorder plan of one shop: a page, its rows fragment and the JSON API.

What to order, SKU by SKU, sortable, filterable and paginated by PostgreSQL
(``connectors/db/plan.py``). A row's figures are the dashboard's own (its ``figures``), so the
plan never disagrees with the dashboard, ``/api/v1/shops/{shop}/skus`` or the reorder-plan CSV,
whose columns it shows. The page stays live: ``plan.js`` re-fetches the rows on screen when the
shop's feed says a SKU changed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal, get_args
from urllib.parse import urlencode

from litestar import Controller, Request, get
from litestar.datastructures import MultiDict, State
from litestar.exceptions import ValidationException
from litestar.params import FromPath
from litestar.response import Template
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import ErrorDetails

from connectors.db import plan as db
from connectors.db.plan import AbcClass, Confidence, PlanFilters, PlanSort
from connectors.db.reports import PlannedSku
from connectors.kafka.topics import SkuFigures
from web.auth import require_shop
from web.dashboard import LOW_COVER_DAYS
from web.dashboard import figures as dashboard_figures
from web.query_params import described_by
from web.reports import ALL_LOCATIONS

DEFAULT_PER_PAGE = 50
MAX_PER_PAGE = 200
PER_PAGE_CHOICES = (25, 50, 100, 200)
# Far past any shop's last page, and small enough that the offset stays a bigint.
MAX_PAGE = 1_000_000


class PlanParams(BaseModel):
    """The query parameters of the plan's page, rows fragment and JSON API, parsed once.

    An empty value (a form's blank field) means the parameter was not given; an unknown
    parameter is an error, so a misspelt filter is not silently ignored.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    sort: PlanSort = Field(default="days_of_cover", description="The column to sort by")
    order: Literal["asc", "desc"] = Field(default="asc", description="Empty values come last")
    # PostgreSQL text cannot hold NUL: refused here rather than failing the query.
    q: str | None = Field(
        default=None,
        max_length=200,
        pattern=r"^[^\x00]*$",
        description="Only SKUs whose title or SKU contains this, in any case",
    )
    abc: AbcClass | None = Field(default=None, description="Only this ABC class")
    confidence: Confidence | None = Field(default=None, description="Only this confidence")
    needs_reorder: bool = Field(
        default=False, description="Only SKUs with a suggested quantity above 0"
    )
    max_cover: float | None = Field(
        default=None,
        ge=0,
        allow_inf_nan=False,
        description="Only SKUs with fewer days of cover than this (as shown, one decimal)",
    )
    page: int = Field(default=1, ge=1, le=MAX_PAGE, description="From 1")
    per_page: int = Field(default=DEFAULT_PER_PAGE, ge=1, le=MAX_PER_PAGE)

    @classmethod
    def from_query(cls, query: MultiDict[Any]) -> PlanParams:
        """The parameters of a request, or a 400 that names each bad one and why."""
        given = {name: value for name, value in query.multi_items() if value != ""}
        try:
            return cls.model_validate(given)
        except ValidationError as invalid:
            problems = [
                {
                    "parameter": ".".join(str(part) for part in error["loc"]),
                    "message": _problem(error),
                }
                for error in invalid.errors()
            ]
            detail = "; ".join(f"{p['parameter']}: {p['message']}" for p in problems)
            raise ValidationException(
                f"invalid query parameters: {detail}", extra=problems
            ) from None

    @property
    def filters(self) -> PlanFilters:
        return PlanFilters(
            text=self.q or None,
            abc_class=self.abc,
            confidence=self.confidence,
            needs_reorder=self.needs_reorder,
            max_days_of_cover=self.max_cover,
        )

    def query(self, **changes: Any) -> str:
        """This query string with ``changes``, defaults left out (the shortest link)."""
        changed = self.model_copy(update=changes)
        defaults = PlanParams()
        values = {
            name: getattr(changed, name)
            for name in PlanParams.model_fields
            if getattr(changed, name) != getattr(defaults, name)
        }
        if values.get("needs_reorder"):
            values["needs_reorder"] = "true"
        return urlencode(values)


def _problem(error: ErrorDetails) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown parameter"
    if error["loc"] == ("sort",):
        return f"unknown sort column {error['input']!r}; one of {', '.join(get_args(PlanSort))}"
    return str(error["msg"])


class PlanRow(SkuFigures):
    """A row of the plan: the SKU's figures (as on the dashboard) and the reorder-plan
    report's columns that only the plan has."""

    location: str = Field(description="Plans are made per SKU over the stock of every location")
    incoming: int = Field(description="Units on order; nothing records purchase orders yet")
    lead_time_demand: float | None = Field(
        description="Forecast demand over the supplier lead time, as the plan counted it"
    )


def plan_rows(planned: list[PlannedSku]) -> list[PlanRow]:
    shown = dashboard_figures([p.row for p in planned])
    return [
        PlanRow(
            **{
                **figures.model_dump(),
                # Stored as float4: its 1-decimal value, not 22.600000381469727.
                "reorder_point": (
                    None if figures.reorder_point is None else round(figures.reorder_point, 1)
                ),
            },
            location=ALL_LOCATIONS,
            incoming=0,
            lead_time_demand=p.lead_time_demand,
        )
        for figures, p in zip(shown, planned, strict=True)
    ]


@dataclass(frozen=True)
class Column:
    label: str
    sort: PlanSort | None = None  # None: every row has the same value, nothing to sort
    hint: str | None = None
    numeric: bool = False


COLUMNS = (
    Column("Product", "title"),
    Column("SKU", "sku"),
    Column("Location", None, "Plans are made per SKU over the stock of all locations"),
    Column("Stock", "stock", "Available now, summed over locations", numeric=True),
    Column("Incoming", None, "Units on order (purchase orders are not recorded yet)", numeric=True),
    Column(
        "Lead-time demand",
        "lead_time_demand",
        "Forecast units sold during the supplier lead time",
        numeric=True,
    ),
    Column("Days of cover", "days_of_cover", "How long the stock lasts", numeric=True),
    Column("Stockout", "stockout_date", "The day the forecast runs the stock out", numeric=True),
    Column("Reorder point", "reorder_point", "Order when stock falls to this", numeric=True),
    Column("Suggested qty", "reorder_quantity", "Suggested reorder quantity", numeric=True),
    Column("ABC", "abc_class", "Class by revenue over 90 days (A: the top)"),
    Column("Confidence", "confidence", "How far the forecast can be trusted"),
    Column("Model", "method", "What made the forecast"),
)
# The first click on these shows the largest first: what to order most of.
LARGEST_FIRST: frozenset[str] = frozenset({"lead_time_demand", "reorder_point", "reorder_quantity"})


def _headers(params: PlanParams, base: str) -> list[dict[str, Any]]:
    headers = []
    for column in COLUMNS:
        href = aria_sort = None
        if column.sort is not None:
            if column.sort == params.sort:
                aria_sort = "ascending" if params.order == "asc" else "descending"
                order = "desc" if params.order == "asc" else "asc"
            else:
                order = "desc" if column.sort in LARGEST_FIRST else "asc"
            href = _link(base, params.query(sort=column.sort, order=order, page=1))
        headers.append({"column": column, "href": href, "aria_sort": aria_sort})
    return headers


def _link(base: str, query: str) -> str:
    return f"{base}?{query}" if query else base


async def _plan(
    state: State, shop_domain: str, params: PlanParams
) -> tuple[db.PlanPage, list[PlanRow]]:
    async with state.pool.connection() as conn:
        found = await db.plan_page(
            conn,
            shop_domain,
            sort=params.sort,
            descending=params.order == "desc",
            filters=params.filters,
            limit=params.per_page,
            offset=(params.page - 1) * params.per_page,
        )
    return found, plan_rows(found.rows)


def _rows_context(
    shop_domain: str, params: PlanParams, found: db.PlanPage, rows: list[PlanRow]
) -> dict[str, Any]:
    """What ``_plan_rows.html`` shows: the rows, their empty state and the pager."""
    base = f"/shops/{shop_domain}/plan"
    pages = max(1, math.ceil(found.total / params.per_page))
    first_shown = (params.page - 1) * params.per_page + 1
    return {
        "rows": rows,
        "total": found.total,
        "page": params.page,
        "pages": pages,
        "first_shown": first_shown,
        "last_shown": first_shown + len(rows) - 1,
        "previous_href": (
            _link(base, params.query(page=min(params.page - 1, pages))) if params.page > 1 else None
        ),
        "next_href": (
            _link(base, params.query(page=params.page + 1)) if params.page < pages else None
        ),
        "first_href": _link(base, params.query(page=1)),
        "filters_active": params.filters.active,
        "clear_href": _link(
            base,
            params.query(
                q=None, abc=None, confidence=None, needs_reorder=False, max_cover=None, page=1
            ),
        ),
        "low_cover_days": LOW_COVER_DAYS,
        "columns": len(COLUMNS),
    }


class PlanController(Controller):
    """The reorder plan of a shop, for its members only."""

    @get("/shops/{shop_domain:str}/plan", include_in_schema=False)
    async def plan_page(
        self, request: Request[Any, Any, Any], state: State, shop_domain: FromPath[str]
    ) -> Template:
        caller, shop, role = await require_shop(request, shop_domain)
        context: dict[str, Any] = {
            "shop": shop,
            "caller": caller,
            "role": role,
            "columns": COLUMNS,
            "per_page_choices": PER_PAGE_CHOICES,
        }
        try:
            params = PlanParams.from_query(request.query_params)
        except ValidationException as invalid:
            # A page, not JSON: the form, the reason and a way back to the whole plan.
            context.update(params=PlanParams(), invalid=invalid.detail)
            return Template("plan.html", context=context, status_code=400)
        found, rows = await _plan(state, shop_domain, params)
        base = f"/shops/{shop_domain}/plan"
        context.update(
            params=params,
            headers=_headers(params, base),
            rows_url=_link(f"{base}/rows", params.query()),
            part="page",
            **_rows_context(shop_domain, params, found, rows),
        )
        return Template("plan.html", context=context)

    @get("/shops/{shop_domain:str}/plan/rows", include_in_schema=False)
    async def plan_rows_fragment(
        self, request: Request[Any, Any, Any], state: State, shop_domain: FromPath[str]
    ) -> Template:
        """The rows on screen and the pager (out of band), for htmx to refresh in place."""
        await require_shop(request, shop_domain)
        params = PlanParams.from_query(request.query_params)
        found, rows = await _plan(state, shop_domain, params)
        return Template(
            "_plan_rows.html",
            context={"part": "fragment", **_rows_context(shop_domain, params, found, rows)},
        )

    @get(
        "/api/v1/shops/{shop_domain:str}/plan",
        # The handler parses its query itself, into PlanParams, once the caller may see the
        # shop; the schema describes those parameters from that model.
        operation_class=described_by(PlanParams),
        summary="The reorder plan, a page at a time",
    )
    async def plan_api(
        self, request: Request[Any, Any, Any], state: State, shop_domain: FromPath[str]
    ) -> dict[str, Any]:
        """A page of the reorder plan: ``rows`` of the ``total`` SKUs matching the filters,
        sorted by ``sort`` (empty values last), ``per_page`` (at most 200) to a page."""
        await require_shop(request, shop_domain)
        params = PlanParams.from_query(request.query_params)
        found, rows = await _plan(state, shop_domain, params)
        return {
            "shop": shop_domain,
            "total": found.total,
            "page": params.page,
            "per_page": params.per_page,
            "rows": [row.model_dump() for row in rows],
        }
