"""Topic names, keys and message schemas: the public Kafka interface of Stockpulse.

Values are JSON objects carrying ``schema_version``; see docs/topics.md for examples.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

RAW_WEBHOOKS = "shopify.webhooks"
SKU_EVENTS = "stockpulse.sku-events"  # internal: normalised per-SKU work, keyed shop|sku
UPDATES = "stockpulse.updates"
FORECASTS = "stockpulse.forecasts"
ALERTS = "stockpulse.alerts"

ALL_TOPICS = (RAW_WEBHOOKS, SKU_EVENTS, UPDATES, FORECASTS, ALERTS)

SCHEMA_VERSION = 1


def sku_key(shop: str, sku_ref: str) -> bytes:
    """Key of per-SKU messages: all of one SKU's messages share a partition, hence one owner."""
    return f"{shop}|{sku_ref}".encode()


def shop_key(shop: str) -> bytes:
    return shop.encode()


class WebhookEnvelope(BaseModel):
    """One accepted Shopify webhook as produced to ``shopify.webhooks`` (payload PII-stripped)."""

    schema_version: int = SCHEMA_VERSION
    topic: str
    shop: str
    event_id: str
    webhook_id: str
    triggered_at: str | None = None
    api_version: str | None = None
    received_at: str
    payload: dict[str, Any]
    delivery_id: int | None = Field(
        default=None, description="Row of Stockpulse's durable webhook inbox (bookkeeping)"
    )


SkuEventKind = Literal[
    "sale_line",
    "refund_line",
    "stock",
    "level_gone",
    "variant_gone",
    "variant",
    "product_delete",
    "shop_redact",
    "app_uninstalled",
]


class SkuEvent(BaseModel):
    """A single per-SKU change derived from a webhook; internal to the stream pipeline."""

    schema_version: int = SCHEMA_VERSION
    kind: SkuEventKind
    shop: str
    event_id: str
    received_at: str
    inbox_id: int | None = None  # the webhook's inbox row, whose note this event clears
    seq: int = 0  # this event's place among its webhook's events
    data: dict[str, Any] = Field(default_factory=dict)


CoverBasis = Literal["forecast", "28-day average"]


class SkuFigures(BaseModel):
    """One SKU's current numbers: the rows of ``/api/v1/shops/{shop}/skus`` and the body of
    every ``stockpulse.updates`` message, under the same names.

    ``days_of_cover`` has one meaning: how long the stock lasts against the SKU's forecast
    (its stored plan) wherever a forecast exists; ``days_of_cover_basis`` says so, or says
    ``28-day average`` for a SKU not forecast yet. The plan fields are null until then.
    """

    variant_id: int
    sku: str | None
    title: str | None
    stock: int | None
    sold_today: int
    sold_7d: int
    sold_28d: int
    avg_daily_demand: float
    days_of_cover: float | None
    days_of_cover_basis: CoverBasis
    stockout_date: str | None = Field(default=None, description="Shop-local date")
    reorder_point: float | None = None
    reorder_quantity: int | None = None
    abc_class: str | None = None
    confidence: Literal["high", "medium", "low"] | None = None
    mase: float | None = None
    method: str | None = None
    plan_as_of: str | None = Field(default=None, description="When the plan was made")


class SkuUpdate(SkuFigures):
    """A SKU's current numbers after a change, published to ``stockpulse.updates``.

    Each message carries absolute values (not deltas) so a consumer that misses or repeats
    messages still ends on the right numbers.
    """

    schema_version: int = SCHEMA_VERSION
    type: Literal["stock", "demand"]
    shop: str
    as_of: str
    events: list[str] = Field(default_factory=list, description="Shopify event ids applied")
    received_at: str | None = Field(
        default=None, description="When the earliest of those webhooks reached the ingress"
    )


class SkuRemoved(BaseModel):
    """A SKU that left the shop (its product was deleted in Shopify), published to
    ``stockpulse.updates`` in place of its numbers: consumers drop it. Final, as Shopify never
    reuses a product's ids."""

    schema_version: int = SCHEMA_VERSION
    type: Literal["removed"] = "removed"
    shop: str
    variant_id: int
    sku: str | None = None
    as_of: str
    events: list[str] = Field(default_factory=list, description="Shopify event ids applied")


class BlendMember(BaseModel):
    """One model behind a forecast, and its weight in the blend."""

    model: str
    weight: float
    run_id: int | None = Field(default=None, description="The nightly run it came from")


class ForecastUpdate(BaseModel):
    """A SKU's forecast and inventory plan, published to ``stockpulse.forecasts`` whenever a
    sale, a stock change, a closed day or a nightly run changes it. Absolute values."""

    schema_version: int = SCHEMA_VERSION
    type: Literal["forecast"] = "forecast"
    shop: str
    variant_id: int
    sku: str | None
    first_day: str = Field(description="Shop-local date of the first forecast day (today)")
    mean: list[float] = Field(description="Expected units per day; today's is a nowcast")
    lower: list[float] = Field(description="80 % interval, lower bound per day")
    upper: list[float] = Field(description="80 % interval, upper bound per day")
    method: Literal["combined", "river", "moving_average_7"]
    members: list[BlendMember] = Field(description="What made the forecast, with weights")
    season: list[float] | None = Field(
        default=None,
        description="Per day, what the shop's own last year (its year-end season, mid-November "
        "to early January) multiplied the combined forecast by; null when nothing",
    )
    confidence: Literal["high", "medium", "low"]
    mase: float | None = Field(description="This SKU's MASE over earlier nightly runs")
    stock: int | None
    days_of_cover: float | None
    stockout_date: str | None
    safety_stock: float
    reorder_point: float
    reorder_quantity: int
    overstock: bool
    dead_stock_days: int | None
    abc_class: str | None
    as_of: str


AlertRule = Literal[
    "low_stock",
    "stockout_soon",
    "stockout_before_reorder",
    "reorder_point",
    "overstock",
    "dead_stock",
]


class AlertMessage(BaseModel):
    """An alert as published on ``stockpulse.alerts`` (key: the shop) and pushed to the shop's
    WebSocket feed. Published at least once: consumers dedupe on ``id``."""

    schema_version: int = SCHEMA_VERSION
    type: Literal["alert"] = "alert"
    id: int = Field(description="Unique per alert; the same alert republished keeps it")
    shop: str
    variant_id: int
    sku: str | None
    title: str | None = Field(description="Product and variant title when the alert fired")
    rule: AlertRule
    severity: Literal["critical", "warning", "info"]
    headline: str = Field(description="What happened, in one sentence")
    digest_only: bool = Field(description="Overstock and dead stock: emailed in the digest only")
    fired_at: str
    product_url: str = Field(description="The product's page in the dashboard")
    figures: dict[str, Any] = Field(
        description="The numbers the alert was raised on: stock, days_of_cover, stockout_date,"
        " reorder_quantity, reorder_by, lead_time_days and the rule's line"
    )


def dumps(model: BaseModel) -> bytes:
    return model.model_dump_json().encode()
