"""A shop's reorder plan a page at a time: sorted, filtered and counted by PostgreSQL.

The rows are the dashboard's own (``SKU_ROWS_SQL`` as a subquery), so a SKU shows the same
stock, demand and plan figures here as on the dashboard, in the JSON API and on
``stockpulse.updates``; this module adds only the plan's lead-time demand, the ordering, the
filters and the count. Deriving the shown figures (which days of cover) stays the caller's, as
for every reader of ``SkuRow`` (``models.inventory.cover``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, get_args

from psycopg import sql

from connectors.db.pool import DictConnection
from connectors.db.queries import SKU_ROWS_SQL, sku_row
from connectors.db.reports import PlannedSku

PlanSort = Literal[
    "title",
    "sku",
    "stock",
    "lead_time_demand",
    "days_of_cover",
    "stockout_date",
    "reorder_point",
    "reorder_quantity",
    "abc_class",
    "confidence",
    "method",
]
AbcClass = Literal["A", "B", "C"]
Confidence = Literal["high", "medium", "low"]

# What each sortable column orders by. Only these fragments ever reach the ORDER BY: the caller
# names a column, never SQL.
SORT_EXPRESSIONS: dict[str, sql.Composable] = {
    "title": sql.SQL("lower(title)"),
    "sku": sql.SQL("lower(sku)"),
    "stock": sql.SQL("stock"),
    "lead_time_demand": sql.SQL("lead_time_demand"),
    "days_of_cover": sql.SQL("cover_days"),
    "stockout_date": sql.SQL("stockout_date"),
    "reorder_point": sql.SQL("reorder_point"),
    "reorder_quantity": sql.SQL("reorder_quantity"),
    "abc_class": sql.SQL("abc_class"),
    # By how far the forecast can be trusted, not alphabetically (high < low < medium).
    "confidence": sql.SQL(
        "CASE confidence WHEN 'low' THEN 1 WHEN 'medium' THEN 2 WHEN 'high' THEN 3 END"
    ),
    "method": sql.SQL("method"),
}
if set(SORT_EXPRESSIONS) != set(get_args(PlanSort)):
    raise RuntimeError("every PlanSort needs exactly one SORT_EXPRESSIONS entry")

# ``cover_days`` is ``models.inventory.cover`` in SQL, so days of cover can be sorted and
# filtered before the page is cut: the plan's figure once the SKU has a plan, else stock over
# the 28-day average (in float8, the very operations Python makes), NULL where stock never runs
# out or is untracked. The shown figure is still derived in Python from the same row.
#
# Lead-time demand is the plan's reorder point less its safety stock, as in the reorder-plan
# report: the demand the plan counted, not a new sum over today's settings.
_PLAN_PAGE = """
WITH planned AS (
    SELECT sku.*,
           round((p.reorder_point - p.safety_stock)::numeric, 1)::float8 AS lead_time_demand,
           CASE WHEN sku.plan_as_of IS NOT NULL THEN sku.plan_days_of_cover::float8
                WHEN sku.stock IS NULL OR sku.sold_28d <= 0 THEN NULL
                ELSE greatest(sku.stock, 0)::float8 / (sku.sold_28d::float8 / 28)
           END AS cover_days
      FROM ({sku_rows}) sku
      LEFT JOIN sku_plans p ON p.shop = %(shop)s AND p.variant_id = sku.variant_id
),
matching AS MATERIALIZED (
    SELECT * FROM planned WHERE {filters}
)
SELECT counted.total, page.*
  FROM (SELECT count(*) AS total FROM matching) counted
  LEFT JOIN LATERAL (
      SELECT * FROM matching
       ORDER BY {order} NULLS LAST, variant_id
       LIMIT %(limit)s OFFSET %(offset)s
  ) page ON true
"""


@dataclass(frozen=True)
class PlanFilters:
    """Which SKUs of the plan to list; each filter left at its default lets every SKU pass."""

    text: str | None = None
    """Part of the title (product and variant) or the SKU, any case; taken literally."""
    abc_class: AbcClass | None = None
    confidence: Confidence | None = None
    needs_reorder: bool = False
    """Only SKUs whose plan suggests ordering (a suggested quantity above 0)."""
    max_days_of_cover: float | None = None
    """Only SKUs whose days of cover, as shown (one decimal), are below this."""

    @property
    def active(self) -> bool:
        return self != PlanFilters()


@dataclass(frozen=True)
class PlanPage:
    """One page of the plan, and how many SKUs match the filters on all pages together."""

    total: int
    rows: list[PlannedSku]


def like_pattern(text: str) -> str:
    r"""A LIKE pattern matching ``text`` anywhere, its wildcards taken literally.

    >>> like_pattern(r"50%_off\now")
    '%50\\%\\_off\\\\now%'
    """
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def plan_page(
    conn: DictConnection,
    shop: str,
    *,
    sort: PlanSort = "days_of_cover",
    descending: bool = False,
    filters: PlanFilters | None = None,
    limit: int = 50,
    offset: int = 0,
) -> PlanPage:
    """The shop's plan rows matching ``filters``, ordered by ``sort`` (empty values last, then
    by variant id so pages never overlap), ``limit`` of them from ``offset``."""
    filters = filters or PlanFilters()
    clauses: list[sql.Composable] = [sql.SQL("true")]
    params: dict[str, Any] = {"shop": shop, "ids": None, "limit": limit, "offset": offset}
    if filters.text:
        params["pattern"] = like_pattern(filters.text)
        clauses.append(
            sql.SQL("(title ILIKE %(pattern)s ESCAPE '\\' OR sku ILIKE %(pattern)s ESCAPE '\\')")
        )
    if filters.abc_class is not None:
        params["abc_class"] = filters.abc_class
        clauses.append(sql.SQL("abc_class = %(abc_class)s"))
    if filters.confidence is not None:
        params["confidence"] = filters.confidence
        clauses.append(sql.SQL("confidence = %(confidence)s"))
    if filters.needs_reorder:
        clauses.append(sql.SQL("reorder_quantity > 0"))
    if filters.max_days_of_cover is not None:
        params["max_cover"] = filters.max_days_of_cover
        clauses.append(sql.SQL("round(cover_days::numeric, 1) < %(max_cover)s"))
    query = sql.SQL(_PLAN_PAGE).format(
        sku_rows=sql.SQL(SKU_ROWS_SQL),
        filters=sql.SQL(" AND ").join(clauses),
        order=SORT_EXPRESSIONS[sort] + sql.SQL(" DESC" if descending else " ASC"),
    )
    # Never prepared: after five runs a prepared statement may switch to a generic plan, which
    # cannot see the shop and estimates joins so badly here that a page took minutes, not ms.
    cur = await conn.execute(query, params, prepare=False)
    found = await cur.fetchall()
    total = found[0]["total"] if found else 0
    return PlanPage(
        total=total,
        rows=[
            PlannedSku(sku_row(r), r["lead_time_demand"])
            for r in found
            if r["variant_id"] is not None
        ],
    )
