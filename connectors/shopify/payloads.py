"""Typed models of the Shopify webhook payloads Stockpulse reads: the boundary of outside data.

A signed body is validated once, at the ingress, against its topic's model. Only declared fields
survive (customer data is never declared, so it never reaches Kafka or PostgreSQL), and every
field we use is checked for type and range: ids and quantities are integers in sane bounds
(never ``"5"``, ``2.7``, ``true`` or ``NaN`` coerced into one), SKUs and titles are strings,
timestamps carry a UTC offset. Code behind the ingress trusts these types.

>>> order = parse_payload("orders/create", b'{"id": 1, "created_at": "2026-01-01T00:00:00Z",'
...     b' "updated_at": "2026-01-01T00:00:00Z",'
...     b' "line_items": [{"id": 2, "variant_id": 3, "quantity": 4, "price": "5.00"}],'
...     b' "email": "jane@example.com"}')
>>> order.line_items[0].quantity, "email" in order.model_dump()
(4, False)
>>> parse_payload("orders/create", b'{"id": 1, "created_at": "2026-01-01T00:00:00Z",'
...     b' "updated_at": "2026-01-01T00:00:00Z", "line_items": [{"id": 2, "quantity": "4"}]}')
Traceback (most recent call last):
...
connectors.shopify.payloads.PayloadRejected: line_items.0.quantity: Input should be a valid integer
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

# Shopify ids are positive 64-bit integers; our columns are bigint.
ShopifyId = Annotated[int, Field(strict=True, ge=1, le=2**63 - 1)]
# Far above any real order line or shelf. A day's totals are bigint, which no number of such
# lines in a day can overflow.
MAX_UNITS = 1_000_000
Quantity = Annotated[int, Field(strict=True, ge=0, le=MAX_UNITS)]
# Available stock may be negative (oversold) and is stored as integer.
StockLevel = Annotated[int, Field(strict=True, ge=-MAX_UNITS * 1000, le=MAX_UNITS * 1000)]
# Shopify sends money as decimal strings; numeric(14, 2) holds under a trillion, and a line's
# total (quantity × price) is numeric(16, 2).
MAX_LINE_TOTAL = Decimal(10) ** 14
# Eleven digits before the point: twelve nines and four decimals round up past numeric(14, 2).
MoneyText = Annotated[str, StringConstraints(pattern=r"^\d{1,11}(\.\d{1,4})?$")]
# No NUL: PostgreSQL text cannot hold it.
_TEXT = r"^[^\x00]*$"
Sku = Annotated[str, StringConstraints(max_length=255, pattern=_TEXT)]
Title = Annotated[str, StringConstraints(max_length=1024, pattern=_TEXT)]
Code = Annotated[str, StringConstraints(max_length=64, pattern=_TEXT)]
Domain = Annotated[str, StringConstraints(max_length=255, to_lower=True, pattern=_TEXT)]
# Real time zones lie within UTC-12 and UTC+14; PostgreSQL refuses offsets past 15:59, which
# would fail only at the apply stage.
MAX_UTC_OFFSET = timedelta(hours=14)


def _real_offset(ts: datetime) -> datetime:
    offset = ts.utcoffset()
    if offset is not None and abs(offset) > MAX_UTC_OFFSET:
        raise ValueError(f"UTC offset {offset} is no time zone's")
    return ts


# Shopify did not exist before 2004; an older timestamp is not one of its events.
EARLIEST = datetime(2004, 1, 1, tzinfo=UTC)
Timestamp = Annotated[AwareDatetime, Field(ge=EARLIEST), AfterValidator(_real_offset)]
MAX_LINES = 5_000  # Shopify caps an order far below this


def _repeats(ids: Iterable[int]) -> bool:
    seen: set[int] = set()
    for i in ids:
        if i in seen:
            return True
        seen.add(i)
    return False


class _Payload(BaseModel):
    # Unknown fields (customer, addresses, notes, …) are dropped, not refused: Shopify adds
    # fields over time and we keep only what we read.
    model_config = ConfigDict(extra="ignore", frozen=True, strict=True)


class LineItem(_Payload):
    id: ShopifyId
    variant_id: ShopifyId | None = None  # None for custom items: nothing to forecast
    product_id: ShopifyId | None = None
    sku: Sku | None = None
    quantity: Quantity
    current_quantity: Quantity | None = None
    price: MoneyText = "0"
    title: Title | None = None
    variant_title: Title | None = None
    name: Title | None = None

    @model_validator(mode="after")
    def _total_fits(self) -> LineItem:
        # Refused here rather than failing to store: the reason then reaches the dead letter.
        # At the price as stored: rounded to cents as PostgreSQL rounds, half away from zero.
        stored = Decimal(self.price).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
        if max(self.quantity, self.current_quantity or 0) * stored >= MAX_LINE_TOTAL:
            raise ValueError(f"line total {self.quantity} × {self.price} is beyond any order's")
        return self


class Order(_Payload):
    """``orders/create``, ``orders/updated``, ``orders/paid``, ``orders/cancelled``."""

    id: ShopifyId
    created_at: Timestamp
    # Required: it orders a line's edits. Shopify sends it on every order webhook; an edit
    # without it could only be dropped unseen, or applied over newer edits.
    updated_at: Timestamp
    cancelled_at: Timestamp | None = None
    test: bool = False
    location_id: ShopifyId | None = None
    currency: Code | None = None
    financial_status: Code | None = None
    fulfillment_status: Code | None = None
    line_items: list[LineItem] = Field(max_length=MAX_LINES)

    @model_validator(mode="after")
    def _line_ids_unique(self) -> Order:
        # Lines are stored by id: a second line with the same id would silently replace or
        # lose the first. Shopify's line item ids are unique, so such a body is not its own.
        if _repeats(line.id for line in self.line_items):
            raise ValueError("two line items share an id")
        return self


class RefundedItem(_Payload):
    """The line item a refund line points at: only what tells us its SKU."""

    variant_id: ShopifyId | None = None
    product_id: ShopifyId | None = None
    sku: Sku | None = None


# Shopify's RefundLineItemRestockType, as webhooks spell it. Another value is a payload this
# app does not understand: set aside (and replayable) rather than guessed to be no restock.
RestockType = Literal["no_restock", "cancel", "return", "legacy_restock"]


class RefundLineItem(_Payload):
    id: ShopifyId | None = None
    line_item_id: ShopifyId
    quantity: Quantity
    restock_type: RestockType | None = None
    location_id: ShopifyId | None = None
    line_item: RefundedItem | None = None


class Refund(_Payload):
    """``refunds/create``."""

    id: ShopifyId
    order_id: ShopifyId
    created_at: Timestamp | None = None
    processed_at: Timestamp | None = None
    restock: bool | None = None
    refund_line_items: list[RefundLineItem] = Field(max_length=MAX_LINES)

    @model_validator(mode="after")
    def _lines_sound(self) -> Refund:
        # Refund lines are counted once by id: two with one id would return their units twice.
        if _repeats(line.id for line in self.refund_line_items if line.id is not None):
            raise ValueError("two refund lines share an id")
        # A line's parts (restocked at several locations) are added up and stored as one; no
        # line holds more than MAX_UNITS, so neither can what one refund returns of it.
        returned: dict[int, int] = {}
        for line in self.refund_line_items:
            returned[line.line_item_id] = returned.get(line.line_item_id, 0) + line.quantity
            if returned[line.line_item_id] > MAX_UNITS:
                raise ValueError(
                    f"refund returns more than {MAX_UNITS} units of line {line.line_item_id}"
                )
        return self


class InventoryLevel(_Payload):
    """``inventory_levels/update`` and ``/connect``. ``updated_at`` is required: it orders
    levels, and the only fallback, the ``X-Shopify-Triggered-At`` header, is not signed."""

    inventory_item_id: ShopifyId
    location_id: ShopifyId
    available: StockLevel | None  # None: Shopify does not track this item
    updated_at: Timestamp


class Variant(_Payload):
    id: ShopifyId
    product_id: ShopifyId | None = None
    sku: Sku | None = None
    title: Title | None = None
    price: MoneyText = "0"
    inventory_item_id: ShopifyId | None = None
    inventory_management: Code | None = "shopify"
    inventory_policy: Code | None = None
    updated_at: Timestamp | None = None


class Product(_Payload):
    """``products/create`` and ``products/update``; ``updated_at`` orders whole payloads."""

    id: ShopifyId
    title: Title | None = None
    status: Code | None = None
    product_type: Title | None = None
    vendor: Title | None = None
    created_at: Timestamp | None = None
    updated_at: Timestamp
    variants: list[Variant] = Field(max_length=MAX_LINES)

    @model_validator(mode="after")
    def _variant_ids_unique(self) -> Product:
        # Variants are stored by id: the second of two with one id would be lost unseen.
        if _repeats(v.id for v in self.variants):
            raise ValueError("two variants share an id")
        return self


class ProductDeleted(_Payload):
    """``products/delete`` carries nothing but the id. Refusing any other field keeps a
    captured product body, replayed under this topic, from deleting that product."""

    model_config = ConfigDict(extra="forbid")
    id: ShopifyId


class ShopRedact(_Payload):
    """``shop/redact``: the payload names the shop, and it must be the one in the header."""

    shop_id: ShopifyId
    shop_domain: Domain


class AppUninstalled(_Payload):
    """``app/uninstalled``: the shop itself. Its ``myshopify_domain`` is required and must be
    the header's: a signed body of another topic (``{"id": …}`` of ``products/delete``)
    replayed under this one must not uninstall the shop."""

    id: ShopifyId | None = None
    myshopify_domain: Domain


ShopifyPayload = (
    Order | Refund | InventoryLevel | Product | ProductDeleted | ShopRedact | AppUninstalled
)

MODELS: dict[str, type[_Payload]] = {
    "orders/create": Order,
    "orders/paid": Order,
    "orders/updated": Order,
    "orders/cancelled": Order,
    "refunds/create": Refund,
    "inventory_levels/update": InventoryLevel,
    "inventory_levels/connect": InventoryLevel,
    "products/create": Product,
    "products/update": Product,
    "products/delete": ProductDeleted,
    "shop/redact": ShopRedact,
    "app/uninstalled": AppUninstalled,
}


class PayloadRejected(ValueError):
    """A signed, well-formed JSON body that is not a usable payload of its topic."""


class UnreadablePayload(PayloadRejected):
    """A signed body that is JSON but not JSON with one meaning this app can read (a key given
    twice, a lone surrogate escape, nesting past the parser's limit): whatever is kept of it
    is a reading of it, not what Shopify sent, so it can never be replayed."""


class NotJson(ValueError):
    """The body is not JSON (syntax, NaN or Infinity, not UTF-8) or too deeply nested to read
    at all."""


def _reason(error: ValidationError) -> str:
    parts = []
    for e in error.errors(include_url=False)[:5]:
        where = ".".join(str(p) for p in e["loc"]) or "body"
        parts.append(f"{where}: {e['msg']}")
    return "; ".join(parts)


def parse_payload(topic: str, body: bytes | str | dict[str, Any]) -> ShopifyPayload:
    """Validate a payload of a topic in :data:`MODELS` (raw JSON or an already parsed dict)."""
    model = MODELS[topic]
    is_json = isinstance(body, dict) or _read_strictly(body)
    try:
        if isinstance(body, dict):
            # JSON mode keeps strings for timestamps and decimals acceptable under strict.
            return model.model_validate_json(_json_bytes(body))  # type: ignore[return-value]
        return model.model_validate_json(body)  # type: ignore[return-value]
    except ValidationError as exc:
        if any(e["type"] == "json_invalid" for e in exc.errors(include_url=False)):
            if is_json:
                # Valid JSON the model's parser will not read (nesting past its limit, a lone
                # surrogate escape): a signed body of no use, set aside rather than refused
                # with a 400 that Shopify would retry for two days.
                raise UnreadablePayload(f"JSON this app cannot read: {_reason(exc)}") from None
            raise NotJson(_reason(exc)) from None
        raise PayloadRejected(_reason(exc)) from None


def _read_strictly(body: bytes | str) -> bool:
    """Whether the body is JSON by RFC 8259 (the model's parser then reports a syntax error).
    ``NaN`` and ``Infinity`` are not JSON, though Python and pydantic read them; an object
    naming a key twice is JSON that means two things (each reader keeps another value, and
    pydantic the last), so it is refused as a payload.

    >>> _read_strictly(b'{"title": "NaN bread", "n": 1}'), _read_strictly(b'{"n": 1')
    (True, False)
    >>> bom, utf16 = b"\\xef\\xbb\\xbf{}", '{"n": 1}'.encode("utf-16")
    >>> _read_strictly(bom), _read_strictly(utf16)
    (False, False)
    >>> _read_strictly(b'{"id": ' + b"9" * 5000 + b"}")
    True
    >>> _read_strictly(b'{"quantity": NaN}')
    Traceback (most recent call last):
    ...
    connectors.shopify.payloads.NotJson: NaN is not a JSON value
    >>> _read_strictly(b'{"line_items": [{"id": 1}], "line_items": []}')
    Traceback (most recent call last):
    ...
    connectors.shopify.payloads.UnreadablePayload: key 'line_items' given twice in one object
    """
    import json

    def refuse(token: str) -> None:
        raise NotJson(f"{token} is not a JSON value")

    def once(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out = dict(pairs)
        if len(out) != len(pairs):
            seen: set[str] = set()
            for key, _ in pairs:
                if key in seen:
                    raise UnreadablePayload(f"key {key[:100]!r} given twice in one object")
                seen.add(key)
        return out

    try:
        # JSON on the wire is UTF-8 without a byte order mark (RFC 8259 §8.1); Python's reader
        # would take UTF-16 and a BOM. Integers stay text: one of 5,000 digits is JSON, past
        # what Python converts.
        text = body.decode("utf-8") if isinstance(body, bytes) else body
        json.loads(text, parse_constant=refuse, parse_int=str, object_pairs_hook=once)
    except RecursionError:
        raise NotJson("nested too deeply") from None
    except (NotJson, UnreadablePayload):
        raise
    except ValueError:
        return False
    return True


def _json_bytes(obj: dict[str, Any]) -> bytes:
    import json

    return json.dumps(obj, separators=(",", ":")).encode()


UNDECLARED = "<undeclared fields>"


def declared_only(topic: str, value: Any) -> Any:
    """What of a body that failed its topic's model may be kept in a dead letter: the fields
    the model declares, at every depth, holding plain values. Customer data is never declared,
    so none of it is kept, however the body nests or names it; a declared field holding an
    object or list where the model wants a value keeps only what kind it was. Iterative, so a
    deeply nested body cannot exhaust the stack.

    >>> declared_only("orders/create", {"id": 1, "email": "a@b", "line_items": [
    ...     {"id": 2, "quantity": "4", "properties": [{"name": "engraving", "value": "Jo"}]}]})
    {'id': 1, 'line_items': [{'id': 2, 'quantity': '4'}]}
    >>> declared_only("orders/create", [{"address1": "1 Secret St"}])
    '<array>'
    >>> declared_only("refunds/create", {"id": {"address1": "1 St"}, "refund_line_items": "Jo"})
    {'id': '<object>', 'refund_line_items': '<string>'}
    >>> declared_only("products/delete", {"id": 5, "title": "Tee", "variants": []})
    {'id': 5, '<undeclared fields>': 2}
    """
    root: list[Any] = [None]
    stack: list[tuple[Any, type[_Payload] | None, list[Any] | dict[str, Any], Any]] = [
        (value, MODELS[topic], root, 0)
    ]
    while stack:
        node, model, parent, slot = stack.pop()
        if model is None:
            parent[slot] = node if _is_plain(node) else _kind(node)
        elif isinstance(node, dict):
            kept: dict[str, Any] = {}
            parent[slot] = kept
            declared = _declared(model)
            for key, inner in declared.items():
                if key in node:
                    kept[key] = None  # keeps the model's order of fields
                    stack.append((node[key], inner, kept, key))
            if model.model_config.get("extra") == "forbid" and node.keys() - declared.keys():
                # Its model refuses extra fields (products/delete: a product body replayed
                # under that topic must not delete it). Dropped silently, they would let a
                # replay of this dead letter pass as the body it never was.
                kept[UNDECLARED] = len(node.keys() - declared.keys())
        elif isinstance(node, list) and parent is not root:
            # No model takes more than MAX_LINES items: the rest says nothing more.
            items: list[Any] = [None] * min(len(node), MAX_LINES)
            parent[slot] = items
            stack.extend((item, model, items, i) for i, item in enumerate(node[:MAX_LINES]))
        else:
            parent[slot] = None if node is None else _kind(node)
    return root[0]


def _is_plain(value: Any) -> bool:
    return value is None or isinstance(value, bool | int | float | str)


def _kind(value: Any) -> str:
    kinds: dict[type, str] = {dict: "<object>", list: "<array>", str: "<string>"}
    return kinds.get(type(value), "<value>")


@functools.cache
def _declared(model: type[_Payload]) -> dict[str, type[_Payload] | None]:
    """Each field's JSON name, with the model it holds (alone or in a list), or None."""
    fields: dict[str, type[_Payload] | None] = {}
    for name, field in model.model_fields.items():
        inner = None
        for arg in (field.annotation, *get_args(field.annotation)):
            for candidate in (arg, *get_args(arg)):
                if isinstance(candidate, type) and issubclass(candidate, _Payload):
                    inner = candidate
        fields[field.alias or name] = inner
    return fields


def dump_payload(payload: ShopifyPayload) -> dict[str, Any]:
    """The PII-free JSON form published in the raw envelope (Shopify's own field names)."""
    return payload.model_dump(mode="json", exclude_none=False)


# Bulk exports (GraphQL bulk operations) name things the GraphQL way: gids, camelCase, money
# sets. These models read them, and ``as_order`` turns one into the webhook's Order, so history
# and live webhooks go through the same rules.
Gid = Annotated[str, StringConstraints(pattern=r"^gid://shopify/[A-Za-z]+/\d{1,19}$")]


def gid_number(gid: str) -> int:
    """>>> gid_number("gid://shopify/Order/42")
    42
    """
    return int(gid.rsplit("/", 1)[1])


def variant_of(line: dict[str, Any]) -> set[int]:
    """The variant of a bulk export's line that could not be read as a whole, if it says which.

    >>> variant_of({"id": "gid://shopify/ProductVariant/7", "price": "n/a"}), variant_of({})
    ({7}, set())
    """
    try:
        return {gid_number(str(line["id"]))}
    except (KeyError, TypeError, ValueError, IndexError):
        return set()


def inventory_item_of(line: dict[str, Any]) -> set[int]:
    """The inventory item of a bulk export's variant line that could not be read as a whole,
    if it says which.

    >>> inventory_item_of({"inventoryItem": {"id": "gid://shopify/InventoryItem/7"}, "sku": 5})
    {7}
    >>> inventory_item_of({"inventoryItem": None}), inventory_item_of({"variant": {"id": "7"}})
    (set(), set())
    """
    try:
        return {gid_number(str(line["inventoryItem"]["id"]))}
    except (KeyError, TypeError, ValueError, IndexError):
        return set()


class _GidRef(_Payload):
    id: Gid


class _Money(_Payload):
    amount: MoneyText


class _MoneySet(_Payload):
    shopMoney: _Money


class BulkLineItem(_Payload):
    id: Gid
    quantity: Quantity
    currentQuantity: Quantity | None = None
    sku: Sku | None = None
    name: Title | None = None
    variant: _GidRef | None = None
    product: _GidRef | None = None
    originalUnitPriceSet: _MoneySet | None = None
    parent: Gid = Field(alias="__parentId")


_RESTOCK_TYPES: dict[str, RestockType] = {
    "RETURN": "return",
    "CANCEL": "cancel",
    "LEGACY_RESTOCK": "legacy_restock",
    "NO_RESTOCK": "no_restock",
}


class BulkRefund(_Payload):
    """A refund as an order's inline ``refunds`` list names it; its lines follow as children."""

    id: Gid
    createdAt: Timestamp | None = None


class BulkRefundLine(_Payload):
    lineItem: _GidRef
    quantity: Quantity
    restockType: Literal["RETURN", "CANCEL", "LEGACY_RESTOCK", "NO_RESTOCK"] | None = None
    parent: Gid = Field(alias="__parentId")


class BulkOrder(_Payload):
    id: Gid
    createdAt: Timestamp
    updatedAt: Timestamp | None = None
    cancelledAt: Timestamp | None = None
    test: bool = False
    refunds: list[BulkRefund] = Field(default=[], max_length=MAX_LINES)

    def as_order(self, lines: list[BulkLineItem]) -> Order:
        return Order(
            id=gid_number(self.id),
            created_at=self.createdAt,
            # An export states a version for each order; one that does not is as created.
            updated_at=self.updatedAt or self.createdAt,
            cancelled_at=self.cancelledAt,
            test=self.test,
            line_items=[
                LineItem(
                    id=gid_number(li.id),
                    variant_id=gid_number(li.variant.id) if li.variant else None,
                    product_id=gid_number(li.product.id) if li.product else None,
                    sku=li.sku,
                    quantity=li.quantity,
                    current_quantity=li.currentQuantity,
                    price=li.originalUnitPriceSet.shopMoney.amount
                    if li.originalUnitPriceSet
                    else "0",
                    title=li.name,
                )
                for li in lines
            ],
        )

    def as_refunds(self, order: Order, lines: list[BulkRefundLine]) -> list[Refund]:
        """The order's refunds as ``refunds/create`` names them, each line pointing at the
        variant of the order line it refunds."""
        variants = {li.id: li for li in order.line_items}
        refunds = []
        for refund in self.refunds:
            own = [line for line in lines if line.parent == refund.id]
            refunds.append(
                Refund(
                    id=gid_number(refund.id),
                    order_id=order.id,
                    created_at=refund.createdAt,
                    refund_line_items=[
                        RefundLineItem(
                            line_item_id=gid_number(line.lineItem.id),
                            quantity=line.quantity,
                            restock_type=_RESTOCK_TYPES[line.restockType]
                            if line.restockType
                            else None,
                            line_item=_refunded(variants.get(gid_number(line.lineItem.id))),
                        )
                        for line in own
                    ],
                )
            )
        return refunds


def _refunded(line: LineItem | None) -> RefundedItem | None:
    if line is None:
        return None
    return RefundedItem(variant_id=line.variant_id, product_id=line.product_id, sku=line.sku)


class _BulkProduct(_Payload):
    id: Gid
    title: Title | None = None
    status: Code | None = None
    updatedAt: Timestamp


class _BulkInventoryItem(_Payload):
    id: Gid
    tracked: bool = True


class BulkVariant(_Payload):
    """A variant of the catalogue export, with its product and inventory item inline; its
    inventory levels follow as children."""

    id: Gid
    sku: Sku | None = None
    title: Title | None = None
    price: MoneyText = "0"
    updatedAt: Timestamp | None = None
    product: _BulkProduct
    inventoryItem: _BulkInventoryItem | None = None

    def as_product(self) -> Product:
        """The variant as a one-variant ``products/update``: the product's ``updatedAt``
        orders it against webhooks, as it does theirs."""
        item = self.inventoryItem
        return Product(
            id=gid_number(self.product.id),
            title=self.product.title,
            status=self.product.status.lower() if self.product.status else None,
            updated_at=self.product.updatedAt,
            variants=[
                Variant(
                    id=gid_number(self.id),
                    product_id=gid_number(self.product.id),
                    sku=self.sku,
                    title=self.title,
                    price=self.price,
                    inventory_item_id=gid_number(item.id) if item else None,
                    inventory_management="shopify" if item is None or item.tracked else None,
                )
            ],
        )


class _Quantity(_Payload):
    name: Code
    quantity: StockLevel


class BulkLevel(_Payload):
    location: _GidRef
    quantities: list[_Quantity] = Field(max_length=16)
    updatedAt: Timestamp
    parent: Gid = Field(alias="__parentId")

    def as_level(self, inventory_item_id: int, tracked: bool) -> InventoryLevel:
        available = next((q.quantity for q in self.quantities if q.name == "available"), None)
        return InventoryLevel(
            inventory_item_id=inventory_item_id,
            location_id=gid_number(self.location.id),
            available=available if tracked else None,
            updated_at=self.updatedAt,
        )
