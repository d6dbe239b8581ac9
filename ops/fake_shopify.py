"""A fake Shopify for tests and the demo: a real HTTP server speaking the Admin GraphQL API's
documented protocol, for the parts Stockpulse uses.

* ``POST {base}/shops/{shop}/admin/api/{version}/graphql.json`` with ``X-Shopify-Access-Token``:
  queries are validated against a subset of the Admin schema (graphql-core) and executed over
  an in-memory store. Cost is calculated before and after the query (1 per object, ``first``
  per connection requested, the nodes returned actually) against a per-store bucket of
  ``maximum`` points restored at ``restore_rate`` per second; a query the bucket cannot pay
  for gets a ``THROTTLED`` error with HTTP 200, as Shopify does. Every answer carries
  ``extensions.cost.throttleStatus``.
* ``POST {base}/shops/{shop}/admin/oauth/access_token``: the client credentials grant.
* Faults to inject: the next N answers as a given 5xx, or delayed by some seconds.

Point ``SHOPIFY_ADMIN_URL`` at ``{base}/shops/{shop}`` to use it.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from graphql import (
    ExecutionResult,
    FieldNode,
    GraphQLError,
    build_schema,
    execute,
    parse,
    validate,
)
from graphql.language import OperationDefinitionNode, VariableNode

SCHEMA = build_schema(
    """
    type Query {
      shop: Shop!
      products(first: Int!, after: String): ProductConnection!
      webhookSubscriptions(first: Int!, after: String): WebhookSubscriptionConnection!
      currentBulkOperation: BulkOperation
    }
    type BulkOperation {
      id: ID!, status: String!, url: String, objectCount: String!, errorCode: String
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
    """
)


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
    domain: str
    timezone: str = "UTC"
    currency: str = "USD"
    products: list[dict[str, Any]] = field(default_factory=list)
    tokens: set[str] = field(default_factory=set)
    used_tokens: set[str] = field(default_factory=set)  # access tokens seen on a query
    subscriptions: list[dict[str, str]] = field(default_factory=list)
    # Orders as bulk exports return them: {"id", "createdAt", "updatedAt", "cancelledAt",
    # "test", "lineItems": [{"id", "quantity", "currentQuantity", "sku", "variantId",
    # "productId", "price"}]} (numeric ids).
    orders: list[dict[str, Any]] = field(default_factory=list)
    bulk: dict[str, Any] | None = None
    client_id: str = ""
    client_secret: str = ""
    bucket: Bucket = field(default_factory=lambda: Bucket(2000.0, 100.0, 2000.0))
    # What happened, for tests: queries served, throttled, refused.
    served: int = 0
    throttled: int = 0


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
        self._runner = web.AppRunner(app, access_log=None)
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
        """The bulk export as JSONL: each order, then its line items with ``__parentId``."""
        store = self.stores.get(request.match_info["shop"])
        if store is None:
            return web.json_response({"error": "not found"}, status=404)
        response = web.StreamResponse(headers={"Content-Type": "application/jsonl"})
        await response.prepare(request)
        chunk: list[str] = []
        for order in store.orders:
            gid = f"gid://shopify/Order/{order['id']}"
            head = {k: v for k, v in order.items() if k != "lineItems"}
            chunk.append(json.dumps({**head, "id": gid}))
            for item in order["lineItems"]:
                line = {
                    "id": f"gid://shopify/LineItem/{item['id']}",
                    "quantity": item["quantity"],
                    "currentQuantity": item["currentQuantity"],
                    "sku": item["sku"],
                    "name": item.get("name"),
                    "variant": {"id": f"gid://shopify/ProductVariant/{item['variantId']}"},
                    "product": {"id": f"gid://shopify/Product/{item['productId']}"},
                    "originalUnitPriceSet": {"shopMoney": {"amount": item["price"]}},
                    "__parentId": gid,
                }
                chunk.append(json.dumps(line))
            if len(chunk) >= 2000:
                await response.write(("\n".join(chunk) + "\n").encode())
                chunk = []
        if chunk:
            await response.write(("\n".join(chunk) + "\n").encode())
        await response.write_eof()
        return response

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
            "name": s.domain.split(".")[0],
            "myshopifyDomain": s.domain,
            "ianaTimezone": s.timezone,
            "currencyCode": s.currency,
        }

    def products(self, _info: Any, first: int, after: str | None = None) -> dict[str, Any]:
        return _page(self._store.products, first, after)

    def currentBulkOperation(self, _info: Any) -> dict[str, Any] | None:
        return self._store.bulk

    def bulkOperationRunQuery(self, _info: Any, query: str) -> dict[str, Any]:
        store = self._store
        if store.bulk is not None and store.bulk["status"] == "RUNNING":
            return {
                "bulkOperation": None,
                "userErrors": [{"field": None, "message": "A bulk query operation is running"}],
            }
        if "orders" not in query:
            return {
                "bulkOperation": None,
                "userErrors": [{"field": ["query"], "message": "unsupported"}],
            }
        operation = f"gid://shopify/BulkOperation/{secrets.randbelow(10**9)}"
        # Done at once: the fake has its data in memory (pollers still see COMPLETED first).
        store.bulk = {
            "id": operation,
            "status": "COMPLETED",
            "url": f"{self._base}/bulk/{store.domain}/{operation.rsplit('/', 1)[1]}.jsonl",
            "objectCount": str(len(store.orders) + sum(len(o["lineItems"]) for o in store.orders)),
            "errorCode": None,
        }
        return {"bulkOperation": store.bulk, "userErrors": []}

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


def seed_orders(
    store: FakeStore,
    orders: int,
    *,
    variants: int = 50,
    days: int = 720,
    seed: int = 1,
    first_id: int = 10_000_000,
) -> dict[int, int]:
    """Fill ``store`` with ``orders`` orders over the last ``days`` days (1–3 lines each, some
    cancelled, some edited down); the units each variant must end up with."""
    import random
    from datetime import UTC, datetime, timedelta

    rng = random.Random(seed)
    now = datetime.now(UTC)
    expected: dict[int, int] = {}
    next_id = first_id
    for _ in range(orders):
        next_id += 1
        created = now - timedelta(days=rng.uniform(1, days))
        cancelled = rng.random() < 0.03
        edited = rng.random() < 0.05
        lines = []
        for _ in range(rng.randint(1, 3)):
            next_id += 1
            variant = first_id + 1_000_000 + rng.randrange(variants)
            quantity = rng.randint(1, 4)
            current = rng.randint(0, quantity) if edited else quantity
            lines.append(
                {
                    "id": next_id,
                    "quantity": quantity,
                    "currentQuantity": current,
                    "sku": f"SKU-{variant % 1000}",
                    "name": f"Product {variant % 1000}",
                    "variantId": variant,
                    "productId": variant + 500_000,
                    "price": "12.50",
                }
            )
            if not cancelled:
                expected[variant] = expected.get(variant, 0) + current
        store.orders.append(
            {
                "id": next_id + 100_000_000,
                "createdAt": created.isoformat(),
                "updatedAt": (created + timedelta(hours=1 if edited else 0)).isoformat(),
                "cancelledAt": (created + timedelta(hours=2)).isoformat() if cancelled else None,
                "test": False,
                "lineItems": lines,
            }
        )
    return expected
