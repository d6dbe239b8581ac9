"""A fake Shopify for tests and the demo: a real HTTP server speaking the Admin GraphQL API's
documented protocol, for the parts Stockpulse uses.

* ``POST {base}/shops/{shop}/admin/api/{version}/graphql.json`` with ``X-Shopify-Access-Token``:
  queries are validated against a subset of the Admin schema (graphql-core) and executed over
  an in-memory store. Cost is calculated before and after the query (1 per object, ``first``
  per connection requested, the nodes returned actually) against a per-store bucket of
  ``maximum`` points restored at ``restore_rate`` per second; a query the bucket cannot pay
  for gets a ``THROTTLED`` error with HTTP 200, as Shopify does. Every answer carries
  ``extensions.cost.throttleStatus``.
* Bulk operations, one at a time per store: a ``productVariants`` query exports the catalogue
  (each variant, then its inventory levels), an ``orders`` query the orders its
  ``created_at``/``updated_at`` search admits (each order with its refunds inline, then its
  line items, then each refund's lines). The file is fixed when the operation starts.
* ``POST {base}/shops/{shop}/admin/oauth/access_token``: the client credentials grant, the
  authorization code grant and expiring offline tokens.
* Faults to inject: the next N answers as a given 5xx, or delayed by some seconds.
* ``{base}/_fake/shops/{shop}/…``: not Shopify. What a store did, posted as the webhook payload
  Shopify sent about it (``orders``, ``refunds``, ``levels``), so the Admin API answers agree
  with the webhooks a simulator sends; ``GET`` of the prefix tells how much the store holds.

Point ``SHOPIFY_ADMIN_URL`` at ``{base}/shops/{shop}`` to use it. ``python -m ops.fake_shopify``
serves one store until SIGTERM or SIGINT (``--help``); the demo stack runs it that way.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import os
import random
import re
import secrets
import signal
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from aiohttp import web
from graphql import (
    ExecutionResult,
    FieldNode,
    GraphQLError,
    StringValueNode,
    build_schema,
    execute,
    parse,
    validate,
)
from graphql.language import OperationDefinitionNode, SelectionSetNode, VariableNode

from ops.shopify_payloads import iso

SCHEMA = build_schema(
    """
    type Query {
      shop: Shop!
      products(first: Int!, after: String): ProductConnection!
      locations(first: Int!, after: String, includeInactive: Boolean): LocationConnection!
      webhookSubscriptions(first: Int!, after: String): WebhookSubscriptionConnection!
      currentBulkOperation: BulkOperation
    }
    type BulkOperation {
      id: ID!, status: String!, url: String, objectCount: String!, errorCode: String,
      query: String!, createdAt: String!
    }
    type BulkOperationRunQueryPayload { bulkOperation: BulkOperation, userErrors: [UserError!]! }
    type Mutation {
      bulkOperationRunQuery(query: String!): BulkOperationRunQueryPayload
      webhookSubscriptionCreate(
        topic: WebhookSubscriptionTopic!, webhookSubscription: WebhookSubscriptionInput!
      ): WebhookSubscriptionCreatePayload
      webhookSubscriptionDelete(id: ID!): WebhookSubscriptionDeletePayload
    }
    enum WebhookSubscriptionTopic {
      ORDERS_CREATE ORDERS_UPDATED ORDERS_CANCELLED ORDERS_PAID REFUNDS_CREATE
      INVENTORY_LEVELS_UPDATE INVENTORY_LEVELS_CONNECT PRODUCTS_CREATE PRODUCTS_UPDATE
      PRODUCTS_DELETE APP_UNINSTALLED BULK_OPERATIONS_FINISH
    }
    enum WebhookSubscriptionFormat { JSON XML }
    input WebhookSubscriptionInput { uri: String!, format: WebhookSubscriptionFormat }
    type WebhookSubscription { id: ID!, topic: WebhookSubscriptionTopic!, uri: String! }
    type WebhookSubscriptionConnection { nodes: [WebhookSubscription!]!, pageInfo: PageInfo! }
    type UserError { field: [String!], message: String! }
    type WebhookSubscriptionCreatePayload {
      webhookSubscription: WebhookSubscription, userErrors: [UserError!]!
    }
    type WebhookSubscriptionDeletePayload {
      deletedWebhookSubscriptionId: ID, userErrors: [UserError!]!
    }
    type Shop {
      name: String!
      myshopifyDomain: String!
      ianaTimezone: String!
      currencyCode: String!
    }
    type PageInfo { hasNextPage: Boolean!, endCursor: String }
    type Product { id: ID!, title: String!, updatedAt: String! }
    type ProductConnection { nodes: [Product!]!, pageInfo: PageInfo! }
    type Location { id: ID!, name: String!, isActive: Boolean! }
    type LocationConnection { nodes: [Location!]!, pageInfo: PageInfo! }
    """
)

RESTOCK_TYPES = ("RETURN", "CANCEL", "LEGACY_RESTOCK", "NO_RESTOCK")
# Refunds that put the units back on the shelf, so they stop counting as sold.
RESTOCKED = ("RETURN", "CANCEL", "LEGACY_RESTOCK")
KEPT_EXPORTS = 4
BULK_BUSY = "A bulk query operation for this app and shop is already in progress"


@dataclass
class Bucket:
    maximum: float
    restore_rate: float
    available: float
    at: float = field(default_factory=time.monotonic)

    def level(self) -> float:
        now = time.monotonic()
        self.available = min(self.maximum, self.available + (now - self.at) * self.restore_rate)
        self.at = now
        return self.available

    def status(self) -> dict[str, float]:
        return {
            "maximumAvailable": self.maximum,
            "currentlyAvailable": round(self.level()),
            "restoreRate": self.restore_rate,
        }


@dataclass
class FakeStore:
    """One store's data, which tests read and change directly: numeric ids, which the API
    turns into gids (except ``products``, which holds what the products query answers)."""

    domain: str
    timezone: str = "UTC"
    currency: str = "USD"
    name: str = ""  # the shop's name; the domain's first label when empty
    # {"id": gid, "title", "updatedAt"}, what the ``products`` query pages through.
    products: list[dict[str, Any]] = field(default_factory=list)
    tokens: set[str] = field(default_factory=set)
    used_tokens: set[str] = field(default_factory=set)  # access tokens seen on a query
    subscriptions: list[dict[str, str]] = field(default_factory=list)
    # {"id", "name", "isActive"}
    locations: list[dict[str, Any]] = field(default_factory=list)
    # {"id", "productId", "productTitle", "productStatus", "productUpdatedAt", "title", "sku",
    # "price", "updatedAt", "inventoryItemId", "tracked"}
    variants: list[dict[str, Any]] = field(default_factory=list)
    # (inventoryItemId, locationId) → {"available", "updatedAt"}
    levels: dict[tuple[int, int], dict[str, Any]] = field(default_factory=dict)
    # Orders as bulk exports return them: {"id", "createdAt", "updatedAt", "cancelledAt",
    # "test", "lineItems": [{"id", "quantity", "currentQuantity", "sku", "name", "variantId",
    # "productId", "price"}], "refunds" (optional): [{"id", "createdAt", "lines":
    # [{"lineItemId", "quantity", "restockType"}]}]}.
    orders: list[dict[str, Any]] = field(default_factory=list)
    # Orders posted to the fake-only endpoint beyond this many push out the oldest (a demo
    # mirroring a simulator's live orders must not grow without bound).
    max_orders: int | None = None
    bulk: dict[str, Any] | None = None
    # A bulk operation answers RUNNING to this many polls before it is COMPLETED.
    bulk_polls_before_done: int = 0
    client_id: str = ""
    client_secret: str = ""
    bucket: Bucket = field(default_factory=lambda: Bucket(2000.0, 100.0, 2000.0))
    # What happened, for tests: queries served, throttled, refused.
    served: int = 0
    throttled: int = 0
    # The latest bulk export's file: operation number → one text per root object.
    exports: dict[str, list[str]] = field(default_factory=dict)
    _bulk_polls_left: int = field(default=0, init=False, repr=False)
    _bulk_done: dict[str, Any] = field(default_factory=dict, init=False, repr=False)
    _last_stamp: datetime | None = field(default=None, init=False, repr=False)
    changed: bool = field(default=False, init=False, repr=False)  # since the last save

    # What a restart of the demo's fake keeps (:func:`save_state`): the store, not the session.
    KEPT = ("name", "timezone", "currency", "locations", "products", "variants", "orders")

    def state(self) -> dict[str, Any]:
        kept: dict[str, Any] = {k: getattr(self, k) for k in self.KEPT}
        kept["levels"] = [[item, loc, v] for (item, loc), v in self.levels.items()]
        return kept

    def restore(self, state: dict[str, Any]) -> None:
        """Put back what :meth:`state` gave; nothing, if any of it is missing."""
        kept = {k: state[k] for k in self.KEPT}
        levels = {(item, loc): v for item, loc, v in state["levels"]}
        for k, value in kept.items():
            setattr(self, k, value)
        self.levels = levels

    def stamp(self) -> str:
        """Now, as Shopify writes it, and later than any stamp this store gave before: two
        changes within a millisecond must still be ordered by their ``updatedAt``."""
        now = datetime.now(UTC)
        now = now.replace(microsecond=now.microsecond // 1000 * 1000)
        if self._last_stamp is not None and now <= self._last_stamp:
            now = self._last_stamp + timedelta(milliseconds=1)
        self._last_stamp = now
        return iso(now)

    def order(self, order_id: int) -> dict[str, Any]:
        # Newest first: the orders a caller changes are mostly the ones it just placed.
        for order in reversed(self.orders):
            if order["id"] == order_id:
                return order
        raise KeyError(f"no order {order_id} in {self.domain}")


@dataclass
class _Refresh:
    """A refresh token's life: Shopify keeps the one just spent valid until the access token
    it bought is used, so a client that lost the answer can spend it again."""

    shop: str
    successor_access: str | None = None  # set once spent


class FakeShopify:
    def __init__(self, app_client_id: str = "", app_secret: str = "") -> None:
        # This deployment's own app (the OAuth authorization code grant).
        self.app_client_id = app_client_id
        self.app_secret = app_secret
        self._codes: dict[str, str] = {}  # code → shop
        self._refresh: dict[str, _Refresh] = {}
        self._lose_token_answers = 0
        self.stores: dict[str, FakeStore] = {}
        self._fail: list[int] = []  # statuses for the next answers
        self._delays: list[float] = []
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    def add_store(self, domain: str, **kwargs: Any) -> FakeStore:
        store = self.stores[domain] = FakeStore(domain, **kwargs)
        return store

    def fail_next(self, count: int, status: int = 502) -> None:
        self._fail.extend([status] * count)

    def delay_next(self, count: int, seconds: float) -> None:
        self._delays.extend([seconds] * count)

    async def start(self, port: int = 0) -> str:
        app = web.Application()
        app.router.add_post("/shops/{shop}/admin/api/{version}/graphql.json", self._graphql)
        app.router.add_post("/shops/{shop}/admin/oauth/access_token", self._token)
        app.router.add_get("/shops/{shop}/admin/oauth/authorize", self._authorize)
        app.router.add_get("/bulk/{shop}/{operation}.jsonl", self._bulk_file)
        app.router.add_get("/_fake/shops/{shop}", self._summary)
        app.router.add_get("/_fake/shops/{shop}/levels", self._levels)
        app.router.add_post("/_fake/shops/{shop}/{what}", self._record)
        # A stop must not wait a minute for a download in progress (aiohttp's default).
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://127.0.0.1:{bound}"
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def admin_url(self) -> str:
        """The ``SHOPIFY_ADMIN_URL`` template that points at this server."""
        return f"{self.base_url}/shops/{{shop}}"

    async def _faults(self) -> web.Response | None:
        if self._delays:
            await asyncio.sleep(self._delays.pop(0))
        if self._fail:
            status = self._fail.pop(0)
            return web.json_response({"errors": "Internal error"}, status=status)
        return None

    def lose_next_token_answer(self) -> None:
        """Grant the next token request, then answer 502 as if the response got lost."""
        self._lose_token_answers += 1

    async def _authorize(self, request: web.Request) -> web.Response:
        """The merchant approves at once: back to ``redirect_uri`` with a signed code."""
        shop = request.match_info["shop"]
        query = request.query
        if shop not in self.stores or query.get("client_id") != self.app_client_id:
            return web.json_response({"error": "unknown app or shop"}, status=400)
        code = secrets.token_hex(12)
        self._codes[code] = shop
        params = {
            "code": code,
            "shop": shop,
            "state": query.get("state", ""),
            "timestamp": str(int(time.time())),
        }
        message = "&".join(f"{k}={v}" for k, v in sorted(params.items()))
        params["hmac"] = hmac.new(
            self.app_secret.encode(), message.encode(), hashlib.sha256
        ).hexdigest()
        raise web.HTTPFound(f"{query['redirect_uri']}?{urlencode(params)}")

    async def _bulk_file(self, request: web.Request) -> web.StreamResponse:
        """An export's JSONL, as it was when its operation ran, written out in pieces."""
        store = self.stores.get(request.match_info["shop"])
        export = None if store is None else store.exports.get(request.match_info["operation"])
        if export is None:
            return web.json_response({"error": "not found"}, status=404)
        response = web.StreamResponse(headers={"Content-Type": "application/jsonl"})
        await response.prepare(request)
        piece: list[str] = []
        size = 0
        for text in export:
            piece.append(text)
            size += len(text)
            if size >= 64 * 1024:
                await response.write("".join(piece).encode())
                piece, size = [], 0
        if piece:
            await response.write("".join(piece).encode())
        await response.write_eof()
        return response

    async def _summary(self, request: web.Request) -> web.Response:
        store = self.stores.get(request.match_info["shop"])
        if store is None:
            return web.json_response({"error": "unknown shop"}, status=404)
        return web.json_response(
            {
                "shop": store.domain,
                "locations": len(store.locations),
                "variants": len(store.variants),
                "levels": len(store.levels),
                "orders": len(store.orders),
            }
        )

    async def _record(self, request: web.Request) -> web.Response:
        """What the store did, told as the webhook payload Shopify sent about it."""
        store = self.stores.get(request.match_info["shop"])
        record = _RECORDERS.get(request.match_info["what"])
        if store is None or record is None:
            return web.json_response({"error": "unknown shop or record"}, status=404)
        try:
            record(store, await request.json())
        except (KeyError, TypeError, ValueError) as exc:
            return web.json_response({"error": f"{type(exc).__name__}: {exc}"}, status=422)
        store.changed = True
        return web.json_response({"ok": True})

    async def _levels(self, request: web.Request) -> web.Response:
        """Every stock level: what a simulator that restarts goes on from."""
        store = self.stores.get(request.match_info["shop"])
        if store is None:
            return web.json_response({"error": "unknown shop"}, status=404)
        return web.json_response(
            [
                {"inventoryItemId": item, "locationId": location, "available": v["available"]}
                for (item, location), v in store.levels.items()
            ]
        )

    def _issue(self, store: FakeStore, *, expires_in: int, refresh: bool) -> dict[str, Any]:
        token = "shpat_" + secrets.token_hex(16)
        store.tokens.add(token)
        body: dict[str, Any] = {
            "access_token": token,
            "scope": "read_products,read_orders,read_all_orders,read_inventory",
            "expires_in": expires_in,
        }
        if refresh:
            refresh_token = "shprt_" + secrets.token_hex(16)
            self._refresh[refresh_token] = _Refresh(store.domain)
            body |= {"refresh_token": refresh_token, "refresh_token_expires_in": 7_776_000}
        return body

    async def _token(self, request: web.Request) -> web.Response:
        store = self.stores.get(request.match_info["shop"])
        form = await request.post()
        if store is None:
            return web.json_response({"error": "invalid_request"}, status=400)
        grant = form.get("grant_type")
        if grant == "client_credentials":
            if (
                form.get("client_id") != store.client_id
                or form.get("client_secret") != store.client_secret
            ):
                return web.json_response({"error": "invalid_client"}, status=400)
            body = self._issue(store, expires_in=86399, refresh=False)
        elif (
            form.get("client_id") != self.app_client_id
            or form.get("client_secret") != self.app_secret
        ):
            return web.json_response({"error": "invalid_client"}, status=400)
        elif grant == "refresh_token":
            spent = self._refresh.get(str(form.get("refresh_token")))
            if spent is None or spent.shop != store.domain:
                return web.json_response({"error": "invalid_grant"}, status=400)
            if spent.successor_access is not None:
                if spent.successor_access not in store.used_tokens:
                    store.tokens.discard(spent.successor_access)  # its answer was lost
                else:
                    return web.json_response({"error": "invalid_grant"}, status=400)
            body = self._issue(store, expires_in=3600, refresh=True)
            spent.successor_access = body["access_token"]
        else:
            if self._codes.pop(str(form.get("code")), None) != store.domain:
                return web.json_response({"error": "invalid_grant"}, status=400)
            body = self._issue(store, expires_in=3600, refresh=form.get("expiring") == "1")
        if self._lose_token_answers:
            self._lose_token_answers -= 1
            return web.json_response({"errors": "lost"}, status=502)
        return web.json_response(body)

    async def _graphql(self, request: web.Request) -> web.Response:
        faulted = await self._faults()
        if faulted is not None:
            return faulted
        store = self.stores.get(request.match_info["shop"])
        token = request.headers.get("X-Shopify-Access-Token", "")
        if store is not None and token in store.tokens:
            store.used_tokens.add(token)
        if store is None or token not in store.tokens:
            return web.json_response(
                {"errors": "[API] Invalid API key or access token"}, status=401
            )
        body = await request.json()
        try:
            document = parse(body["query"])
        except GraphQLError as exc:
            return web.json_response({"errors": [{"message": exc.message}]})
        problems = validate(SCHEMA, document)
        if problems:
            return web.json_response({"errors": [{"message": p.message} for p in problems]})
        variables = body.get("variables") or {}
        requested = _requested_cost(document, variables)
        if requested > store.bucket.level():
            store.throttled += 1
            return web.json_response(
                {
                    "errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}],
                    "extensions": {"cost": _cost(requested, None, store.bucket)},
                }
            )
        result = execute(
            SCHEMA, document, root_value=_Root(store, self.base_url), variable_values=variables
        )
        assert isinstance(result, ExecutionResult)  # the resolvers are synchronous
        actual = 1 + _returned_nodes(result.data)
        store.bucket.available = store.bucket.level() - actual
        store.served += 1
        answer: dict[str, Any] = {
            "data": result.data,
            "extensions": {"cost": _cost(requested, actual, store.bucket)},
        }
        if result.errors:
            answer["errors"] = [{"message": e.message} for e in result.errors]
        return web.json_response(answer)


def _cost(requested: float, actual: float | None, bucket: Bucket) -> dict[str, Any]:
    return {
        "requestedQueryCost": requested,
        "actualQueryCost": actual,
        "throttleStatus": bucket.status(),
    }


def _requested_cost(document: Any, variables: dict[str, Any]) -> float:
    """1 for the query, plus ``first`` for each connection it asks for (Shopify's rule of
    thumb: objects cost 1, a connection costs its page size)."""
    cost = 1.0
    for definition in document.definitions:
        if not isinstance(definition, OperationDefinitionNode):
            continue
        for selection in definition.selection_set.selections:
            if not isinstance(selection, FieldNode):
                continue
            for argument in selection.arguments or ():
                if argument.name.value == "first":
                    value = argument.value
                    first = (
                        variables.get(value.name.value, 0)
                        if isinstance(value, VariableNode)
                        else int(getattr(value, "value", 0))
                    )
                    cost += float(first)
    return cost


def _returned_nodes(data: Any) -> int:
    if isinstance(data, dict):
        return sum(
            (len(v) if k == "nodes" and isinstance(v, list) else 0) + _returned_nodes(v)
            for k, v in data.items()
        )
    if isinstance(data, list):
        return sum(_returned_nodes(v) for v in data)
    return 0


class _Root:
    """Resolvers over one fake store."""

    def __init__(self, store: FakeStore, base: str) -> None:
        self._store = store
        self._base = base

    def shop(self, _info: Any) -> dict[str, str]:
        s = self._store
        return {
            "name": s.name or s.domain.split(".")[0],
            "myshopifyDomain": s.domain,
            "ianaTimezone": s.timezone,
            "currencyCode": s.currency,
        }

    def products(self, _info: Any, first: int, after: str | None = None) -> dict[str, Any]:
        return _page(self._store.products, first, after)

    def locations(
        self,
        _info: Any,
        first: int,
        after: str | None = None,
        includeInactive: bool | None = False,
    ) -> dict[str, Any]:
        shown = [
            {
                "id": f"gid://shopify/Location/{loc['id']}",
                "name": loc["name"],
                "isActive": loc["isActive"],
            }
            for loc in self._store.locations
            if includeInactive or loc["isActive"]
        ]
        return _page(shown, first, after)

    def currentBulkOperation(self, _info: Any) -> dict[str, Any] | None:
        store = self._store
        if store.bulk is not None and store.bulk["status"] == "RUNNING":
            if store._bulk_polls_left > 0:
                store._bulk_polls_left -= 1
            else:
                store.bulk.update(store._bulk_done, status="COMPLETED")
        return store.bulk

    def bulkOperationRunQuery(self, _info: Any, query: str) -> dict[str, Any]:
        store = self._store
        if store.bulk is not None and store.bulk["status"] == "RUNNING":
            return {
                "bulkOperation": None,
                "userErrors": [{"field": None, "message": f"{BULK_BUSY}: {store.bulk['id']}."}],
            }
        try:
            if "productVariants" in query:
                export = _catalogue_export(store)
            elif "orders" in query:
                export = _orders_export(store, _search_bounds(query, ZoneInfo(store.timezone)))
            else:
                return {
                    "bulkOperation": None,
                    "userErrors": [{"field": ["query"], "message": "unsupported"}],
                }
        except GraphQLError as exc:
            return {
                "bulkOperation": None,
                "userErrors": [{"field": ["query"], "message": f"Invalid bulk query: {exc}"}],
            }
        number = str(secrets.randbelow(10**9))
        lines = sum(text.count("\n") for text in export)
        # Shopify keeps a result for 7 days, so a resumed reader can fetch it again; the fake
        # keeps the newest few in memory.
        store.exports[number] = export
        while len(store.exports) > KEPT_EXPORTS:
            del store.exports[next(iter(store.exports))]
        store._bulk_done = {
            # Shopify gives no file when nothing matched.
            "url": f"{self._base}/bulk/{store.domain}/{number}.jsonl" if lines else None,
            "objectCount": str(lines),
        }
        store._bulk_polls_left = store.bulk_polls_before_done
        store.bulk = {
            "id": f"gid://shopify/BulkOperation/{number}",
            "status": "RUNNING",
            "url": None,
            "objectCount": "0",
            "errorCode": None,
            "query": query,
            "createdAt": store.stamp(),
        }
        if not store.bulk_polls_before_done:
            # Done at once: the export is in memory already (pollers see COMPLETED first).
            store.bulk.update(store._bulk_done, status="COMPLETED")
            return {"bulkOperation": dict(store.bulk), "userErrors": []}
        return {"bulkOperation": {**store.bulk, "status": "CREATED"}, "userErrors": []}

    def webhookSubscriptions(
        self, _info: Any, first: int, after: str | None = None
    ) -> dict[str, Any]:
        return _page(self._store.subscriptions, first, after)

    def webhookSubscriptionCreate(
        self, _info: Any, topic: str, webhookSubscription: dict[str, Any]
    ) -> dict[str, Any]:
        uri = webhookSubscription["uri"]
        if any(s["topic"] == topic and s["uri"] == uri for s in self._store.subscriptions):
            return {
                "webhookSubscription": None,
                "userErrors": [
                    {"field": ["uri"], "message": "Address for this topic has already been taken"}
                ],
            }
        created = {
            "id": f"gid://shopify/WebhookSubscription/{secrets.randbelow(10**12)}",
            "topic": topic,
            "uri": uri,
        }
        self._store.subscriptions.append(created)
        return {"webhookSubscription": created, "userErrors": []}

    def webhookSubscriptionDelete(self, _info: Any, id: str) -> dict[str, Any]:
        before = len(self._store.subscriptions)
        self._store.subscriptions[:] = [s for s in self._store.subscriptions if s["id"] != id]
        if len(self._store.subscriptions) == before:
            return {
                "deletedWebhookSubscriptionId": None,
                "userErrors": [{"field": ["id"], "message": "Webhook subscription does not exist"}],
            }
        return {"deletedWebhookSubscriptionId": id, "userErrors": []}


def _page(items: list[Any], first: int, after: str | None) -> dict[str, Any]:
    start = int(base64.b64decode(after).decode()) if after else 0
    page = items[start : start + first]
    end = start + len(page)
    return {
        "nodes": page,
        "pageInfo": {
            "hasNextPage": end < len(items),
            "endCursor": base64.b64encode(str(end).encode()).decode() if page else None,
        },
    }


def _gid(kind: str, number: int) -> str:
    return f"gid://shopify/{kind}/{number}"


def _texts(roots: Iterable[list[dict[str, Any]]]) -> list[str]:
    """Each root's lines as one text: a snapshot without one string the size of the file."""
    return ["".join(json.dumps(line) + "\n" for line in lines) for lines in roots]


def _catalogue_export(store: FakeStore) -> list[str]:
    """Each variant with its product and inventory item inline, then its inventory levels."""
    located: dict[int, list[tuple[int, dict[str, Any]]]] = {}
    for (item, location), level in store.levels.items():
        located.setdefault(item, []).append((location, level))
    return _texts(_variant_lines(v, located.get(v["inventoryItemId"], [])) for v in store.variants)


def _variant_lines(
    variant: dict[str, Any], levels: list[tuple[int, dict[str, Any]]]
) -> list[dict[str, Any]]:
    gid = _gid("ProductVariant", variant["id"])
    root = {
        "id": gid,
        "sku": variant["sku"],
        "title": variant["title"],
        "price": variant["price"],
        "updatedAt": variant["updatedAt"],
        "product": {
            "id": _gid("Product", variant["productId"]),
            "title": variant["productTitle"],
            "status": variant["productStatus"],
            "updatedAt": variant["productUpdatedAt"],
        },
        "inventoryItem": {
            "id": _gid("InventoryItem", variant["inventoryItemId"]),
            "tracked": variant["tracked"],
        },
    }
    return [root] + [
        {
            "location": {"id": _gid("Location", location)},
            "quantities": [{"name": "available", "quantity": level["available"]}],
            "updatedAt": level["updatedAt"],
            "__parentId": gid,
        }
        for location, level in levels
    ]


# (field, comparator, bound) of an orders search, e.g. ("updated_at", ">", 2026-11-23 00:10Z).
Bound = tuple[str, str, datetime]

_SEARCH_TERM = re.compile(
    r"\b(created_at|updated_at):(>=|<=|>|<)(?:'([^']*)'|\"([^\"]*)\"|([^\s)]+))"
)
_COMPARE = {
    ">=": datetime.__ge__,
    ">": datetime.__gt__,
    "<=": datetime.__le__,
    "<": datetime.__lt__,
}


def _search_bounds(bulk_query: str, zone: ZoneInfo) -> list[Bound]:
    """The ``created_at``/``updated_at`` comparisons of the ``orders(query: …)`` search (terms
    are ANDed; others are ignored). A date alone is its midnight, and a time without an offset
    is read, in the shop's time zone."""
    search = _orders_search(parse(bulk_query).definitions)
    bounds = []
    for name, comparator, *values in _SEARCH_TERM.findall(search):
        text = next(v for v in values if v)
        at = datetime.fromisoformat(text)  # a date alone: its midnight
        bounds.append((name, comparator, at if at.tzinfo else at.replace(tzinfo=zone)))
    return bounds


def _orders_search(nodes: Iterable[Any]) -> str:
    for node in nodes:
        selections: SelectionSetNode | None = getattr(node, "selection_set", None)
        if isinstance(node, FieldNode) and node.name.value == "orders":
            for argument in node.arguments or ():
                if argument.name.value == "query" and isinstance(argument.value, StringValueNode):
                    return argument.value.value
            return ""
        if selections is not None:
            found = _orders_search(selections.selections)
            if found:
                return found
    return ""


def _orders_export(store: FakeStore, bounds: list[Bound]) -> list[str]:
    """Each order with its refunds inline, then its line items, then each refund's lines."""
    fields = {"created_at": "createdAt", "updated_at": "updatedAt"}

    def admitted(order: dict[str, Any]) -> bool:
        return all(
            _COMPARE[comparator](datetime.fromisoformat(order[fields[name]]), at)
            for name, comparator, at in bounds
        )

    return _texts(_order_lines(order) for order in store.orders if admitted(order))


def _order_lines(order: dict[str, Any]) -> list[dict[str, Any]]:
    gid = _gid("Order", order["id"])
    refunds = order.get("refunds") or []
    lines: list[dict[str, Any]] = [
        {
            "id": gid,
            "createdAt": order["createdAt"],
            "updatedAt": order["updatedAt"],
            "cancelledAt": order["cancelledAt"],
            "test": order["test"],
            "refunds": [
                {"id": _gid("Refund", r["id"]), "createdAt": r["createdAt"]} for r in refunds
            ],
        }
    ]
    for item in order["lineItems"]:
        lines.append(
            {
                "id": _gid("LineItem", item["id"]),
                "quantity": item["quantity"],
                "currentQuantity": item["currentQuantity"],
                "sku": item["sku"],
                "name": item.get("name"),
                "variant": {"id": _gid("ProductVariant", item["variantId"])},
                "product": {"id": _gid("Product", item["productId"])},
                "originalUnitPriceSet": {"shopMoney": {"amount": item["price"]}},
                "__parentId": gid,
            }
        )
    for refund in refunds:
        for line in refund["lines"]:
            lines.append(
                {
                    "lineItem": {"id": _gid("LineItem", line["lineItemId"])},
                    "quantity": line["quantity"],
                    "restockType": line["restockType"],
                    "__parentId": _gid("Refund", refund["id"]),
                }
            )
    return lines


class FakeShopifyThread:
    """The fake in a thread of its own, for callers without a running event loop (a stack
    whose web process must know the fake's address before it starts)."""

    def __init__(self, fake: FakeShopify) -> None:
        self.fake = fake
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def start(self) -> str:
        self._thread.start()
        return asyncio.run_coroutine_threadsafe(self.fake.start(), self._loop).result(10)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.fake.stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


def seed_catalogue(
    store: FakeStore,
    products: int,
    *,
    variants_per_product: int = 3,
    locations: int = 2,
    seed: int = 1,
    first_id: int = 50_000_000,
) -> None:
    """Fill ``store`` with ``products`` active products of ``variants_per_product`` variants,
    each stocked (0–200) at each of ``locations`` locations; about 5 % of the variants do not
    track inventory. Products, variants, inventory items and locations are numbered from
    ``first_id``, ``+1,000,000``, ``+2,000,000`` and ``+3,000,000`` (clear of
    :func:`seed_orders`' own ranges); every timestamp is in the past."""
    if products * variants_per_product >= 1_000_000 or locations >= 1_000_000:
        raise ValueError("a catalogue this big would run into the next id range")
    rng = random.Random(seed)
    now = datetime.now(UTC)

    def past(max_days: float) -> str:
        return iso(now - timedelta(days=rng.uniform(1, max_days)))

    location_ids = [first_id + 3_000_000 + n for n in range(1, locations + 1)]
    store.locations.extend(
        {"id": lid, "name": f"Location {n}", "isActive": True}
        for n, lid in enumerate(location_ids, start=1)
    )
    variant_number = 0
    for p in range(1, products + 1):
        product_id = first_id + p
        title = f"Product {p}"
        product_updated = past(400)
        store.products.append(
            {"id": _gid("Product", product_id), "title": title, "updatedAt": product_updated}
        )
        for v in range(1, variants_per_product + 1):
            variant_number += 1
            variant_id = first_id + 1_000_000 + variant_number
            item_id = first_id + 2_000_000 + variant_number
            store.variants.append(
                {
                    "id": variant_id,
                    "productId": product_id,
                    "productTitle": title,
                    "productStatus": "ACTIVE",
                    "productUpdatedAt": product_updated,
                    "title": "Default Title" if variants_per_product == 1 else f"Option {v}",
                    "sku": f"SKU-{variant_id}",
                    "price": f"{rng.randint(3, 150)}.{rng.choice(('00', '50', '99'))}",
                    "updatedAt": past(400),
                    "inventoryItemId": item_id,
                    "tracked": rng.random() >= 0.05,
                }
            )
            for location_id in location_ids:
                store.levels[(item_id, location_id)] = {
                    "available": rng.randint(0, 200),
                    "updatedAt": past(30),
                }


def set_level(store: FakeStore, inventory_item_id: int, location_id: int, available: int) -> str:
    """Set a stock level as Shopify would: its ``updatedAt`` becomes now (later than any other
    change of this store's); the new ``updatedAt``."""
    stamp = store.stamp()
    store.levels[(inventory_item_id, location_id)] = {"available": available, "updatedAt": stamp}
    return stamp


def edit_line(store: FakeStore, order_id: int, line_item_id: int, current_quantity: int) -> None:
    """An order edit: the line now holds ``current_quantity`` units; the order is updated now."""
    order = store.order(order_id)
    _line(order, line_item_id)["currentQuantity"] = current_quantity
    order["updatedAt"] = store.stamp()


def add_refund(
    store: FakeStore,
    order_id: int,
    refund_id: int,
    line_item_id: int,
    quantity: int,
    restock_type: str,
) -> None:
    """A refund of ``quantity`` units of one line, made now; like every refund it takes the
    units out of the line's ``currentQuantity``, as Shopify documents."""
    _refund(store, order_id, refund_id, store.stamp(), [(line_item_id, quantity, restock_type)])


def _line(order: dict[str, Any], line_item_id: int) -> dict[str, Any]:
    for item in order["lineItems"]:
        if item["id"] == line_item_id:
            return item
    raise KeyError(f"no line item {line_item_id} in order {order['id']}")


def _refund(
    store: FakeStore,
    order_id: int,
    refund_id: int,
    created_at: str,
    lines: Sequence[tuple[int, int, str]],
) -> None:
    order = store.order(order_id)
    for line_item_id, quantity, restock_type in lines:
        if restock_type not in RESTOCK_TYPES:
            raise ValueError(f"restock type {restock_type!r} is none of {RESTOCK_TYPES}")
        item = _line(order, line_item_id)
        # Shopify: currentQuantity is "the number of units ordered, excluding refunded and
        # removed units", every refund included.
        item["currentQuantity"] = max(0, item["currentQuantity"] - quantity)
    order.setdefault("refunds", []).append(
        {
            "id": refund_id,
            "createdAt": created_at,
            "lines": [{"lineItemId": li, "quantity": q, "restockType": t} for li, q, t in lines],
        }
    )
    order["updatedAt"] = created_at


def expected_units(order: dict[str, Any]) -> dict[int, int]:
    """The units each variant of ``order`` counts as sold: none when it is cancelled; else per
    line the lower of what it holds now plus its refunds without a restock (goodwill: still
    sold) and what was ordered less its refunds with a restock, so a refund counts once
    whether or not currentQuantity shows it yet."""
    units: dict[int, int] = {}
    for item in order["lineItems"]:
        restocked = kept = 0
        for refund in order.get("refunds") or ():
            for line in refund["lines"]:
                if line["lineItemId"] != item["id"]:
                    continue
                if line["restockType"] in RESTOCKED:
                    restocked += line["quantity"]
                else:
                    kept += line["quantity"]
        held = (
            0
            if order["cancelledAt"]
            else max(0, min(item["currentQuantity"] + kept, item["quantity"] - restocked))
        )
        units[item["variantId"]] = units.get(item["variantId"], 0) + held
    return units


def seed_orders(
    store: FakeStore,
    orders: int,
    *,
    variants: int = 50,
    days: int = 720,
    seed: int = 1,
    first_id: int = 10_000_000,
    variant_ids: Sequence[int] | None = None,
    refund_rate: float = 0.0,
) -> dict[int, int]:
    """Fill ``store`` with ``orders`` orders over the last ``days`` days (1–3 lines each, some
    cancelled, some edited down); the units each variant must end up with (see
    :func:`expected_units`).

    Lines are of ``variants`` made-up variants, or of ``variant_ids`` (named as in
    ``store.variants`` where they are there). ``refund_rate`` of the orders not cancelled get a
    refund of part of one line: half of them returned to stock, half not restocked."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    known = {v["id"]: v for v in store.variants} if variant_ids is not None else {}
    expected: dict[int, int] = {}
    next_id = first_id
    for _ in range(orders):
        next_id += 1
        created = now - timedelta(days=rng.uniform(1, days))
        cancelled = rng.random() < 0.03
        edited = rng.random() < 0.05
        lines: list[dict[str, Any]] = []
        for _ in range(rng.randint(1, 3)):
            next_id += 1
            if variant_ids is None:
                variant = first_id + 1_000_000 + rng.randrange(variants)
            else:
                variant = variant_ids[rng.randrange(len(variant_ids))]
            quantity = rng.randint(1, 4)
            current = rng.randint(0, quantity) if edited else quantity
            listed = known.get(variant)
            lines.append(
                {
                    "id": next_id,
                    "quantity": quantity,
                    "currentQuantity": current,
                    "sku": listed["sku"] if listed else f"SKU-{variant % 1000}",
                    "name": f"{listed['productTitle']} - {listed['title']}"
                    if listed
                    else f"Product {variant % 1000}",
                    "variantId": variant,
                    "productId": listed["productId"] if listed else variant + 500_000,
                    "price": listed["price"] if listed else "12.50",
                }
            )
        order: dict[str, Any] = {
            "id": next_id + 100_000_000,
            "createdAt": created.isoformat(),
            "updatedAt": (created + timedelta(hours=1 if edited else 0)).isoformat(),
            "cancelledAt": (created + timedelta(hours=2)).isoformat() if cancelled else None,
            "test": False,
            "lineItems": lines,
            "refunds": [],
        }
        store.orders.append(order)
        if refund_rate and not cancelled and rng.random() < refund_rate:
            line = lines[rng.randrange(len(lines))]
            quantity = rng.randint(1, line["quantity"])
            restock = "RETURN" if rng.random() < 0.5 else "NO_RESTOCK"
            refunded_at = (created + timedelta(hours=3)).isoformat()
            # Refund ids are a kind of their own: reusing the order's number clashes with none.
            _refund(store, order["id"], order["id"], refunded_at, [(line["id"], quantity, restock)])
        if not cancelled:
            for variant, units in expected_units(order).items():
                expected[variant] = expected.get(variant, 0) + units
    return expected


def record_order(store: FakeStore, payload: dict[str, Any]) -> None:
    """An ``orders/create`` or ``orders/cancelled`` webhook's order, now in the store (a
    known order takes the payload's cancellation and ``updated_at``; its lines stay)."""
    order_id = int(payload["id"])
    updated = payload.get("updated_at") or payload["created_at"]
    try:
        known = store.order(order_id)
    except KeyError:
        pass
    else:
        known["cancelledAt"] = payload.get("cancelled_at")
        known["updatedAt"] = updated
        return
    store.orders.append(
        {
            "id": order_id,
            "createdAt": payload["created_at"],
            "updatedAt": updated,
            "cancelledAt": payload.get("cancelled_at"),
            "test": bool(payload.get("test")),
            "lineItems": [
                {
                    "id": int(li["id"]),
                    "quantity": int(li["quantity"]),
                    "currentQuantity": int(li.get("current_quantity", li["quantity"])),
                    "sku": li.get("sku"),
                    "name": li.get("name") or li.get("title"),
                    "variantId": li.get("variant_id"),
                    "productId": li.get("product_id"),
                    "price": li.get("price", "0.00"),
                }
                for li in payload["line_items"]
            ],
            "refunds": [],
        }
    )
    if store.max_orders is not None and len(store.orders) > store.max_orders:
        # A tenth at a time: trimming the front of a list moves all of it.
        del store.orders[: len(store.orders) - store.max_orders * 9 // 10]


def record_refund(store: FakeStore, payload: dict[str, Any]) -> None:
    """A ``refunds/create`` webhook's refund, now on its order."""
    _refund(
        store,
        int(payload["order_id"]),
        int(payload["id"]),
        payload["created_at"],
        [
            (int(line["line_item_id"]), int(line["quantity"]), str(line["restock_type"]).upper())
            for line in payload["refund_line_items"]
        ],
    )


def record_level(store: FakeStore, payload: dict[str, Any]) -> None:
    """An ``inventory_levels/update`` webhook's level, with its ``updated_at``."""
    key = (int(payload["inventory_item_id"]), int(payload["location_id"]))
    store.levels[key] = {"available": payload["available"], "updatedAt": payload["updated_at"]}


_RECORDERS = {"orders": record_order, "refunds": record_refund, "levels": record_level}


def seed_demo_store(
    store: FakeStore, history_days: int, *, now: datetime | None = None, seed: int | None = None
) -> None:
    """The demo store of ``stockpulse up`` (:mod:`ops.demo_store`): the simulator's catalogue,
    location and starting stock, and ``history_days`` days of orders before ``now``.

    Catalogue and stock are dated at the start of the history: whatever the simulator reports
    later is newer, even after this fake restarts."""
    from ops import demo_store

    now = now or datetime.now(UTC)
    seed = demo_store.SEED if seed is None else seed
    products, skus = demo_store.build_catalogue(random.Random(seed))
    since = iso(now - timedelta(days=history_days))
    store.name = demo_store.SHOP_NAME
    store.locations.append(
        {"id": demo_store.LOCATION_ID, "name": demo_store.LOCATION_NAME, "isActive": True}
    )
    for product in products:
        store.products.append(
            {"id": _gid("Product", product.product_id), "title": product.title, "updatedAt": since}
        )
        store.variants.extend(
            {
                "id": v.variant_id,
                "productId": product.product_id,
                "productTitle": product.title,
                "productStatus": "ACTIVE",
                "productUpdatedAt": since,
                "title": v.title,
                "sku": v.sku,
                "price": v.price,
                "updatedAt": since,
                "inventoryItemId": v.inventory_item_id,
                "tracked": True,
            }
            for v in product.variants
        )
    for sku in skus:
        key = (sku.variant.inventory_item_id, demo_store.LOCATION_ID)
        store.levels[key] = {"available": sku.stock, "updatedAt": since}
    for past in demo_store.history(skus, history_days, now, seed=seed):
        record_order(store, past.order)
        for refund in past.refunds:
            record_refund(store, refund)


SAVE_EVERY_S = 2.0


async def _serve(args: argparse.Namespace) -> None:
    fake = FakeShopify(args.app_client_id, args.app_secret)
    store = fake.add_store(
        args.shop,
        client_id=args.client_id,
        client_secret=args.client_secret,
        max_orders=args.max_orders,
    )
    state = Path(args.state) if args.state else None
    if not (state is not None and _restored(store, state)) and args.demo_history_days is not None:
        seed_demo_store(store, args.demo_history_days)
        store.changed = True
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    base = await fake.start(args.port)
    print(
        f"fake Shopify serving {args.shop} at {base} (admin URL {fake.admin_url()}):"
        f" {len(store.variants)} variants, {len(store.orders)} orders",
        flush=True,
    )
    saving = asyncio.ensure_future(_keep_saved(store, state)) if state is not None else None
    await stop.wait()
    await fake.stop()
    if saving is not None:
        saving.cancel()
        await save_state(store, state)  # type: ignore[arg-type]


def _restored(store: FakeStore, path: Path) -> bool:
    """Whether the store kept at ``path`` was put back. One that cannot be read is set aside
    as ``.bad`` and the store seeded afresh: a demo that cannot start helps nobody."""
    try:
        store.restore(json.loads(path.read_text()))
    except FileNotFoundError:
        return False
    except (OSError, ValueError, TypeError, KeyError) as exc:
        print(f"fake Shopify: {path} unreadable ({exc!r}); seeding afresh", flush=True)
        path.replace(path.with_suffix(".bad"))
        return False
    return True


async def _keep_saved(store: FakeStore, path: Path) -> None:
    while True:
        await save_state(store, path)
        await asyncio.sleep(SAVE_EVERY_S)


async def save_state(store: FakeStore, path: Path) -> None:
    """The store as it is now, if it changed, written whole: a restarted demo goes on from
    what its simulator last recorded here, as a real store would. Without it, the store came
    back with its seeded stock and orders, and reconciliation then "corrected" our figures to
    them (an outside test)."""
    if not store.changed:
        return
    store.changed = False
    text = json.dumps(store.state())
    part = path.with_suffix(".part")
    await asyncio.to_thread(_write_replacing, part, path, text)


def _write_replacing(part: Path, path: Path, text: str) -> None:
    part.write_text(text)
    part.replace(path)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ops.fake_shopify",
        description="Serve one fake Shopify store on loopback until SIGTERM or SIGINT.",
    )
    parser.add_argument("--port", type=int, default=0, help="0: any free port")
    parser.add_argument("--shop", required=True, help="the store's myshopify.com domain")
    parser.add_argument("--client-id", default="", help="its app's (client credentials grant)")
    parser.add_argument(
        "--client-secret",
        default=os.environ.get("FAKE_SHOPIFY_CLIENT_SECRET", ""),
        help="or FAKE_SHOPIFY_CLIENT_SECRET (not in the process list)",
    )
    parser.add_argument(
        "--demo-history-days",
        type=int,
        default=None,
        help="seed the store as the demo store, with this many days of orders",
    )
    parser.add_argument(
        "--max-orders", type=int, default=None, help="posted orders beyond this drop the oldest"
    )
    parser.add_argument(
        "--state", default=None, help="a file the store is kept in across restarts (JSON)"
    )
    parser.add_argument("--app-client-id", default="", help="the deployment's OAuth app")
    parser.add_argument("--app-secret", default=os.environ.get("FAKE_SHOPIFY_APP_SECRET", ""))
    args = parser.parse_args(argv)
    try:
        asyncio.run(_serve(args))
    except KeyboardInterrupt:
        pass  # a Ctrl-C before the handlers were installed: stopping is what was asked
    except OSError as exc:
        print(f"fake Shopify could not start: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
