"""A shop's alert history: the Alerts page and its JSON API.

Alerts come newest first with each recipient's delivery, filtered by rule, delivery state,
product and time (``connectors/db/alerts.py`` does the filtering and paging in PostgreSQL).
The product page, the dashboard's banners and the alerts CSV show alerts through the helpers
here, so an alert reads the same everywhere.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypeVar
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from litestar import Controller, Request, get
from litestar.datastructures import MultiDict, State
from litestar.exceptions import ValidationException
from litestar.params import FromPath
from litestar.response import Template
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from connectors.db import alerts as db
from connectors.db.alerts import HistoryFilter
from connectors.db.pool import DictConnection
from connectors.kafka.topics import AlertRule
from connectors.zones import zone_or_utc
from models.alerts import TITLES, Rule, headline
from web.auth import MAX_SHOPIFY_ID, require_shop
from web.query_params import described_by

PAGE_SIZE = 50
API_DEFAULT_LIMIT = 50
API_MAX_LIMIT = 200
# Far past any shop's last page, and small enough that the offset stays a bigint.
MAX_PAGE = 1_000_000
MAX_OFFSET = MAX_PAGE * PAGE_SIZE

DeliveryFilter = Literal["waiting", "sent", "failed"]
DeliveryState = Literal["waiting", "pending", "retrying", "sent", "failed", "cancelled"]
Severity = Literal["critical", "warning", "info"]
TimeRange = Literal["24h", "7d", "30d", "all"]
RANGES: dict[str, timedelta | None] = {
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
    "all": None,
}
RANGE_LABELS = {"24h": "Last 24 h", "7d": "Last 7 days", "30d": "Last 30 days", "all": "All time"}
DELIVERY_LABELS = {"waiting": "Not sent yet", "sent": "Sent", "failed": "Failed"}
RULE_CHOICES = tuple((rule.value, TITLES[rule]) for rule in Rule)


# -- query parameters ----------------------------------------------------------------------


class _Filters(BaseModel):
    """Filters shared by the page and the API. An empty value (a form's blank field) means
    not given; an unknown parameter is an error, so a misspelt filter is not silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    rule: AlertRule | None = Field(default=None, description="Only alerts of this rule")
    variant_id: int | None = Field(
        default=None, ge=1, le=MAX_SHOPIFY_ID, description="Only alerts of this product variant"
    )
    delivery: DeliveryFilter | None = Field(
        default=None,
        description="Only alerts with a delivery in this state: waiting (not sent yet,"
        " retries included), sent or failed",
    )
    # PostgreSQL text cannot hold NUL: refused here rather than failing the query.
    q: str | None = Field(
        default=None,
        max_length=200,
        pattern=r"^[^\x00]*$",
        description="Only alerts of products whose title or SKU contains this, in any case",
    )

    def history_filter(self, since: datetime | None, until: datetime | None) -> HistoryFilter:
        return HistoryFilter(
            rule=self.rule,
            variant_id=self.variant_id,
            since=since,
            until=until,
            # The history calls everything not sent yet "pending".
            delivery="pending" if self.delivery == "waiting" else self.delivery,
            search=self.q or None,
        )


class AlertsQuery(_Filters):
    """The JSON API's query parameters."""

    since: AwareDatetime | None = Field(
        default=None, description="Only alerts fired at or after this time (ISO 8601, zoned)"
    )
    until: AwareDatetime | None = Field(
        default=None, description="Only alerts fired before this time (ISO 8601, zoned)"
    )
    limit: int = Field(default=API_DEFAULT_LIMIT, ge=1, le=API_MAX_LIMIT)
    offset: int = Field(default=0, ge=0, le=MAX_OFFSET)

    @field_validator("since", "until", mode="before")
    @classmethod
    def _a_time_not_a_day(cls, value: object) -> object:
        """A bare date got "should have timezone info" after "a valid datetime or date": say
        what is wanted (which day begins when depends on a zone the caller must name)."""
        if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()):
            raise ValueError(f"a time with its zone is needed, e.g. {value.strip()}T00:00:00Z")
        # Anything else unreadable got pydantic's "a valid datetime or date", though a date
        # is refused (an outside test).
        if isinstance(value, str) and not re.match(r"\s*\d{4}-\d{2}-\d{2}[T ]", value):
            raise ValueError("a time with its zone is needed, e.g. 2026-12-01T00:00:00Z")
        return value

    @field_validator("since", "until")
    @classmethod
    def _in_utc_range(cls, value: datetime | None) -> datetime | None:
        try:
            return None if value is None else value.astimezone(UTC)
        except OverflowError:
            raise ValueError("is out of range") from None

    @model_validator(mode="after")
    def _ordered(self) -> AlertsQuery:
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise ValueError("since must be before until")
        return self


class PageQuery(_Filters):
    """The Alerts page's query parameters."""

    range: TimeRange = "all"
    page: int = Field(default=1, ge=1, le=MAX_PAGE)

    def query(self, **changes: Any) -> str:
        """This query string with ``changes``, defaults left out (the shortest link)."""
        changed = self.model_copy(update=changes)
        defaults = PageQuery()
        return urlencode(
            {
                name: getattr(changed, name)
                for name in PageQuery.model_fields
                if getattr(changed, name) != getattr(defaults, name)
            }
        )

    @property
    def filtered(self) -> bool:
        return self.query(page=1) != ""


Q = TypeVar("Q", bound=BaseModel)


def parse_query(model: type[Q], query: MultiDict[Any]) -> Q:
    """A request's parameters as ``model``, or a 400 that names each bad one and why."""
    given = {name: value for name, value in query.multi_items() if value != ""}
    try:
        return model.model_validate(given)
    except ValidationError as invalid:
        problems = [
            {
                # Empty for a rule over several parameters (since before until).
                "parameter": ".".join(str(part) for part in error["loc"]),
                "message": "unknown parameter"
                if error["type"] == "extra_forbidden"
                else str(error["msg"]).removeprefix("Value error, "),
            }
            for error in invalid.errors()
        ]
        detail = "; ".join(
            f"{p['parameter']}: {p['message']}" if p["parameter"] else p["message"]
            for p in problems
        )
        raise ValidationException(f"invalid query parameters: {detail}", extra=problems) from None


# -- what an alert is, in the API ----------------------------------------------------------


class AlertDelivery(BaseModel):
    recipient: str
    state: DeliveryState = Field(
        description="waiting (not in an email yet), pending, retrying, sent, failed or cancelled"
    )
    attempts: int
    error: str | None = Field(description="The last error: why it failed or is retrying")
    sent_at: datetime | None


class AlertItem(BaseModel):
    id: int
    variant_id: int
    sku: str | None
    title: str | None = Field(description="Product and variant title")
    product_deleted: bool = Field(
        False, description="Deleted in Shopify since: the alert stays, the product page is gone"
    )
    rule: AlertRule
    severity: Severity
    headline: str = Field(description="What happened, in one sentence")
    fired_at: datetime = Field(description="UTC")
    digest_only: bool = Field(description="Overstock and dead stock: emailed in the digest only")
    figures: dict[str, Any] = Field(description="The numbers the alert was raised on")
    deliveries: list[AlertDelivery] = Field(description="One per recipient, by address")


class AlertsPage(BaseModel):
    shop: str
    items: list[AlertItem]
    total: int = Field(description="Alerts matching the filters, all pages")
    limit: int
    offset: int


def alert_headline(rule: str, figures: dict[str, Any]) -> str:
    try:
        return headline(Rule(rule), figures)
    except (KeyError, TypeError, ValueError):
        # Figures of another shape (an alert stored by an older version): the rule says enough.
        return rule_title(rule) + "."


def rule_title(rule: str) -> str:
    try:
        return TITLES[Rule(rule)]
    except ValueError:
        return rule


def alert_item(row: dict[str, Any]) -> AlertItem:
    """An alert of ``connectors.db.alerts.history`` as the API shows it."""
    figures = row["figures"]
    return AlertItem(
        id=row["id"],
        variant_id=row["variant_id"],
        # A variant Shopify deleted since keeps the names it fired with.
        sku=row["sku"] if row["sku"] is not None else figures.get("sku"),
        title=row["title"] or figures.get("title"),
        product_deleted=row["product_deleted"],
        rule=row["rule"],
        severity=row["severity"],
        headline=alert_headline(row["rule"], figures),
        fired_at=row["fired_at"].astimezone(UTC),
        digest_only=row["digest_only"],
        figures=figures,
        deliveries=[AlertDelivery.model_validate(d) for d in row["deliveries"]],
    )


async def product_alerts(
    conn: DictConnection, shop: str, variant_id: int, limit: int
) -> list[AlertItem]:
    rows, _ = await db.history(conn, shop, HistoryFilter(variant_id=variant_id), limit=limit)
    return [alert_item(row) for row in rows]


# -- what an alert is, on a page -----------------------------------------------------------


def local_time(at: datetime, zone: ZoneInfo) -> str:
    return at.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")


def delivery_text(d: AlertDelivery, zone: ZoneInfo) -> str:
    """A recipient's delivery in a few words: a failure with its error, a retry with its
    attempts, a sent one with its time."""
    if d.state == "sent":
        return "sent" + (f" {local_time(d.sent_at, zone)}" if d.sent_at else "")
    if d.state == "failed":
        return f"failed: {d.error}" if d.error else "failed"
    if d.state == "retrying":
        tries = f"{d.attempts} attempt{'s' if d.attempts != 1 else ''}"
        return f"retrying ({tries}): {d.error}" if d.error else f"retrying ({tries})"
    if d.state == "cancelled":
        return f"cancelled: {d.error}" if d.error else "cancelled"
    return {"waiting": "waiting to be sent", "pending": "being sent"}[d.state]


def shown(item: AlertItem, zone: ZoneInfo) -> dict[str, Any]:
    """A row of the Alerts page or the product page."""
    return {
        "item": item,
        "fired_local": local_time(item.fired_at, zone),
        "rule_title": rule_title(item.rule),
        "deliveries": [
            {"recipient": d.recipient, "state": d.state, "text": delivery_text(d, zone)}
            for d in item.deliveries
        ],
    }


def banner(row: dict[str, Any], shop: str, zone: ZoneInfo) -> dict[str, Any]:
    """A dashboard banner of an alert of ``connectors.db.alerts.recent``; the feed's alert
    messages become the same banner in ``dashboard.js``."""
    figures = row["figures"]
    return {
        "id": row["id"],
        "severity": row["severity"],
        "headline": alert_headline(row["rule"], figures),
        "rule_title": rule_title(row["rule"]),
        "product": figures.get("title") or row["sku"] or figures.get("sku") or "a product",
        # A variant deleted since has no page; its alert is still told.
        "product_url": None
        if row["product_deleted"]
        else f"/shops/{shop}/products/{row['variant_id']}",
        "fired_local": local_time(row["fired_at"], zone),
    }


def _page_context(shop: str, params: PageQuery, rows: list[dict[str, Any]], total: int) -> dict:
    base = f"/shops/{shop}/alerts"

    def link(query: str) -> str:
        return f"{base}?{query}" if query else base

    pages = max(1, math.ceil(total / PAGE_SIZE))
    first_shown = (params.page - 1) * PAGE_SIZE + 1
    return {
        "rows": rows,
        "total": total,
        "page": params.page,
        "pages": pages,
        "first_shown": first_shown,
        "last_shown": first_shown + len(rows) - 1,
        "previous_href": link(params.query(page=min(params.page - 1, pages)))
        if params.page > 1
        else None,
        "next_href": link(params.query(page=params.page + 1)) if params.page < pages else None,
        "first_href": link(params.query(page=1)),
        "clear_href": base,
    }


class AlertsController(Controller):
    """The alert history of a shop, for its members only."""

    @get("/shops/{shop_domain:str}/alerts", include_in_schema=False)
    async def alerts_page(
        self, request: Request[Any, Any, Any], state: State, shop_domain: FromPath[str]
    ) -> Template:
        caller, shop, role = await require_shop(request, shop_domain)
        context: dict[str, Any] = {
            "shop": shop,
            "caller": caller,
            "role": role,
            "rules": RULE_CHOICES,
            "deliveries": DELIVERY_LABELS,
            "ranges": RANGE_LABELS,
        }
        try:
            params = parse_query(PageQuery, request.query_params)
        except ValidationException as invalid:
            # A page, not JSON: the form, the reason and a way back to every alert.
            context.update(params=PageQuery(), invalid=invalid.detail, rows=[], total=0)
            return Template("alerts.html", context=context, status_code=400)
        window = RANGES[params.range]
        since = None if window is None else datetime.now(UTC) - window
        async with state.pool.connection() as conn:
            found, total = await db.history(
                conn,
                shop_domain,
                params.history_filter(since, None),
                limit=PAGE_SIZE,
                offset=(params.page - 1) * PAGE_SIZE,
            )
        zone = zone_or_utc(shop.get("timezone"))
        rows = [shown(alert_item(row), zone) for row in found]
        context.update(
            params=params,
            timezone=zone.key,
            **_page_context(shop_domain, params, rows, total),
        )
        return Template("alerts.html", context=context)

    @get(
        "/api/v1/shops/{shop_domain:str}/alerts",
        # The handler parses its query itself, once the caller may see the shop (so a stranger
        # learns nothing from a bad one); the schema describes those parameters from the model.
        operation_class=described_by(AlertsQuery),
        summary="Fired alerts, newest first, with their deliveries",
    )
    async def alerts_api(
        self, request: Request[Any, Any, Any], state: State, shop_domain: FromPath[str]
    ) -> AlertsPage:
        """A page of the shop's alerts (``limit``, at most 200, from ``offset``), newest first,
        each with its delivery to every recipient; ``total`` counts all that match."""
        await require_shop(request, shop_domain)
        params = parse_query(AlertsQuery, request.query_params)
        async with state.pool.connection() as conn:
            found, total = await db.history(
                conn,
                shop_domain,
                params.history_filter(params.since, params.until),
                limit=params.limit,
                offset=params.offset,
            )
        return AlertsPage(
            shop=shop_domain,
            items=[alert_item(row) for row in found],
            total=total,
            limit=params.limit,
            offset=params.offset,
        )
