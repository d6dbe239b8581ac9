"""A shop's CSV reports: their columns, the CSV they stream and the route that serves them.

Rows come from ``connectors/db/reports.py`` a batch at a time and leave as CSV a chunk at a
time, so a download of any length holds one batch in memory. Adding a report is a row
generator there and an entry in :data:`REPORTS` here.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncGenerator, AsyncIterable, Callable, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from litestar import Controller, Request, get
from litestar.datastructures import State
from litestar.exceptions import NotFoundException
from litestar.params import FromPath
from litestar.response import Stream
from psycopg_pool import AsyncConnectionPool

from connectors.db import reports
from connectors.db.forecasts import shop_today
from connectors.db.pool import DictConnection
from connectors.db.shops import get_shop
from connectors.zones import zone_or_utc

# The Alerts page's own reading of an alert (headline, names), so the report tells its story.
from web.alerts import AlertDelivery, alert_item

# The dashboard's own derivation of a SKU's figures (which days of cover to show), so a
# report can never disagree with the page.
from web.auth import require_shop
from web.dashboard import figures as dashboard_figures

ROWS_PER_CHUNK = 500

# Plans are made per SKU over the stock of every location (sku_plans).
ALL_LOCATIONS = "all locations"

# A spreadsheet reads a cell starting with one of these as a formula (OWASP, CSV injection).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

RowSource = Callable[[DictConnection, str], AsyncGenerator[Mapping[str, Any], None]]


@dataclass(frozen=True)
class Report:
    """A report's columns (the header row, and the keys read from each row) and its rows."""

    columns: tuple[str, ...]
    rows: RowSource


async def _reorder_plan_rows(
    conn: DictConnection, shop: str
) -> AsyncGenerator[dict[str, Any], None]:
    async with aclosing(reports.reorder_plan(conn, shop)) as planned_skus:
        async for planned in planned_skus:
            (figures,) = dashboard_figures([planned.row])
            yield {
                **figures.model_dump(),
                "location": ALL_LOCATIONS,
                # No purchase orders are known yet; every plan was made with none incoming.
                "incoming": 0,
                "lead_time_demand": planned.lead_time_demand,
                # Stored as float4: its 1-decimal value, not 22.600000381469727.
                "reorder_point": (
                    None if figures.reorder_point is None else round(figures.reorder_point, 1)
                ),
                "plan_as_of": (
                    None
                    if figures.plan_as_of is None
                    else datetime.fromisoformat(figures.plan_as_of)
                ),
            }


_ALERT_FIGURES = (
    "stock",
    "days_of_cover",
    "stockout_date",
    "reorder_quantity",
    "reorder_by",
)


async def _alert_rows(conn: DictConnection, shop: str) -> AsyncGenerator[dict[str, Any], None]:
    found = await get_shop(conn, shop)
    zone = zone_or_utc(found["timezone"] if found else None)
    async with aclosing(reports.alerts(conn, shop)) as alerts:
        async for row in alerts:
            item = alert_item(row)
            figures = item.figures
            yield {
                # Shop-local with its offset: the time the merchant saw, still exact.
                "fired_at": item.fired_at.astimezone(zone).isoformat(),
                "product": item.title,
                "sku": item.sku,
                "rule": item.rule,
                "severity": item.severity,
                "headline": item.headline,
                **{name: figures.get(name) for name in _ALERT_FIGURES},
                "deliveries": "; ".join(_delivery_cell(d) for d in item.deliveries),
            }


def _delivery_cell(d: AlertDelivery) -> str:
    """``ops@shop.example: failed (550 no such user)``: the state, and why when it is not sent."""
    error = " ".join(d.error.split()) if d.error else ""
    if d.state == "retrying":
        error = f"{d.attempts} attempts" + (f": {error}" if error else "")
    return f"{d.recipient}: {d.state}" + (f" ({error})" if error and d.state != "sent" else "")


REPORTS: dict[str, Report] = {
    "inventory": Report(
        (
            "product_title",
            "variant_title",
            "sku",
            "variant_id",
            "location_id",
            "location_name",
            "available",
            "updated_at",
            "tracked",
        ),
        reports.inventory,
    ),
    "forecasts": Report(
        ("sku", "variant_id", "day", "mean", "lower", "upper", "method"),
        reports.forecasts,
    ),
    "reorder-plan": Report(
        (
            "title",
            "sku",
            "variant_id",
            "location",
            "stock",
            "incoming",
            "lead_time_demand",
            "days_of_cover",
            "days_of_cover_basis",
            "stockout_date",
            "reorder_point",
            "reorder_quantity",
            "abc_class",
            "confidence",
            "method",
            "plan_as_of",
        ),
        _reorder_plan_rows,
    ),
    "alerts": Report(
        (
            "fired_at",
            "product",
            "sku",
            "rule",
            "severity",
            "headline",
            *_ALERT_FIGURES,
            "deliveries",
        ),
        _alert_rows,
    ),
}


def csv_cell(value: object) -> object:
    """A value as a CSV cell: text that a spreadsheet would run as a formula gets a leading
    ``'``; numbers stay numbers, however negative. Timestamps are UTC ISO 8601.

    >>> csv_cell('=HYPERLINK("http://x")'), csv_cell(-3), csv_cell("-3"), csv_cell(-2.5)
    ('\\'=HYPERLINK("http://x")', -3, "'-3", -2.5)
    >>> csv_cell(None), csv_cell(True), csv_cell(date(2026, 1, 2))
    ('', 'true', '2026-01-02')
    """
    if isinstance(value, str):
        return "'" + value if value.startswith(_FORMULA_STARTS) else value
    # Runs for every cell of reports millions of cells long: the common numbers leave at once
    # (by exact type, since a bool is an int too).
    if type(value) is int or type(value) is float:
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return value


async def csv_chunks(
    columns: Sequence[str], rows: AsyncIterable[Mapping[str, Any]]
) -> AsyncGenerator[bytes, None]:
    """UTF-8 CSV: the header row at once (the download starts before the query's first row),
    then ``ROWS_PER_CHUNK`` rows per chunk."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns)
    yield _drain(buffer)
    pending = 0
    async for row in rows:
        writer.writerow([csv_cell(row[column]) for column in columns])
        pending += 1
        if pending == ROWS_PER_CHUNK:
            yield _drain(buffer)
            pending = 0
    if pending:
        yield _drain(buffer)


def _drain(buffer: io.StringIO) -> bytes:
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return text.encode()


async def report_csv(
    pool: AsyncConnectionPool[DictConnection], shop: str, report: Report
) -> AsyncGenerator[bytes, None]:
    """The report as CSV, on a connection of ``pool`` held only while it streams. Closed
    early (a download cut short), it closes its rows first, then gives the connection back."""
    async with (
        pool.connection() as conn,
        aclosing(report.rows(conn, shop)) as rows,
        aclosing(csv_chunks(report.columns, rows)) as chunks,
    ):
        async for chunk in chunks:
            yield chunk


def csv_response(body: AsyncIterable[bytes], filename: str) -> Stream:
    """A CSV download; Litestar adds ``charset=utf-8`` to the ``text/csv`` media type."""
    return Stream(
        body,
        media_type="text/csv",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
        },
    )


def report_filename(shop: str, report: str, day: date) -> str:
    return f"{shop}-{report}-{day.isoformat()}.csv"


class ReportsController(Controller):
    """CSV reports of one shop. Takes guards like any controller: the path names the shop."""

    path = "/api/v1"

    # Litestar matches whole path segments only, so ``.csv`` is read off the last one here.
    @get("/shops/{shop_domain:str}/reports/{report_file:str}")
    async def report(
        self,
        request: Request[Any, Any, Any],
        state: State,
        shop_domain: FromPath[str],
        report_file: FromPath[str],
    ) -> Stream:
        await require_shop(request, shop_domain)
        name, dot, extension = report_file.rpartition(".")
        report = REPORTS.get(name) if dot and extension == "csv" else None
        if report is None:
            raise NotFoundException("unknown report")
        async with state.pool.connection() as conn:
            try:
                today, _, _ = await shop_today(conn, shop_domain)
            except LookupError:
                raise NotFoundException("unknown shop") from None
        return csv_response(
            report_csv(state.pool, shop_domain, report),
            report_filename(shop_domain, name, today),
        )
