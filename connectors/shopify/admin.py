"""The Shopify Admin GraphQL API client: cost-based throttling, bounded retries, pagination.

Shopify limits an app per store by calculated query cost: a bucket of ``maximumAvailable``
points refilled at ``restoreRate`` per second, reported after every call in
``extensions.cost.throttleStatus``. A query whose requested cost exceeds what is left is refused
with a ``THROTTLED`` error, which can come with HTTP 200. So the client keeps a model of the
bucket (:class:`CostBucket`), lets a query go only when the bucket should hold its cost, and
resets the model from every answer. A ``THROTTLED`` answer anyway (another app of the store's,
a wrong guess of the cost) waits exactly as long as the bucket needs and retries.

Errors of the network and 5xx answers are retried with exponential backoff and full jitter, a
bounded number of times; other 4xx are not (they will not get better). A 401 asks the token
source for a fresh token once. Reads are safe to retry; callers retry mutations only where
Shopify makes them idempotent or reconcile afterwards (webhook subscriptions are listed first).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

DEFAULT_COST = 50  # until Shopify told us what a query costs
MAX_ATTEMPTS = 5
MAX_THROTTLED = 20
BACKOFF_BASE_S = 0.25
BACKOFF_CAP_S = 8.0

TokenSource = Callable[[bool], Awaitable[str]]  # force_refresh → access token


class AdminError(Exception):
    """Shopify answered with errors that a retry will not fix."""


class Unauthorized(AdminError):
    """The token was refused even after a refresh."""


class Unavailable(AdminError):
    """Shopify could not be reached or kept failing after every retry."""


@dataclass
class CostBucket:
    """What Shopify last said of the store's bucket, projected forward in time.

    >>> bucket = CostBucket()
    >>> bucket.update({"maximumAvailable": 1000.0, "currentlyAvailable": 100, "restoreRate": 50.0},
    ...               now=0.0)
    >>> bucket.wait_for(200, now=0.0), bucket.wait_for(200, now=1.0)
    (2.0, 1.0)
    """

    maximum: float | None = None
    available: float = 0.0
    restore_rate: float = 0.0
    at: float = 0.0

    def update(self, status: dict[str, Any], now: float, in_flight: float = 0.0) -> None:
        """Shopify's word on the bucket, less what this client has sent that Shopify may not
        have charged yet when it answered (counted twice at worst: never overdrawn)."""
        self.maximum = float(status["maximumAvailable"])
        self.available = float(status["currentlyAvailable"]) - in_flight
        self.restore_rate = float(status["restoreRate"])
        self.at = now

    def _level(self, now: float) -> float:
        assert self.maximum is not None
        return min(self.maximum, self.available + (now - self.at) * self.restore_rate)

    def wait_for(self, cost: float, now: float) -> float:
        """Seconds until ``cost`` points should be there (0: now); unknown bucket: now."""
        if self.maximum is None:
            return 0.0
        missing = min(cost, self.maximum) - self._level(now)
        if missing <= 0:
            return 0.0
        return missing / self.restore_rate if self.restore_rate > 0 else BACKOFF_CAP_S

    def take(self, cost: float, now: float) -> None:
        """Count a query that is on its way, so concurrent callers do not overdraw."""
        if self.maximum is not None:
            self.available = self._level(now) - cost
            self.at = now


class AdminClient:
    """One store's Admin API, for one app's token."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        endpoint: str,
        token: TokenSource,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._http = http
        self._endpoint = endpoint
        self._token = token
        self._clock = clock
        self._sleep = sleep
        self.bucket = CostBucket()
        self._costs: dict[str, float] = {}  # query text → the cost Shopify last asked for it
        self._gate = asyncio.Lock()
        self._in_flight = 0.0  # cost of queries sent and not answered yet
        self._probing = False  # a first query is finding out what the bucket holds
        self._known = asyncio.Event()
        self.throttled = 0  # answers that were THROTTLED all the same (for tests, metrics)

    @staticmethod
    def endpoint_for(admin_url: str, shop: str, api_version: str) -> str:
        """``SHOPIFY_ADMIN_URL`` (``https://{shop}`` by default) → the GraphQL endpoint."""
        base = admin_url.format(shop=shop).rstrip("/")
        return f"{base}/admin/api/{api_version}/graphql.json"

    async def query(self, document: str, variables: dict[str, Any] | None = None) -> Any:
        """Run one query or mutation; its ``data``."""
        refreshed = False
        failures = 0
        throttled = 0
        while True:
            cost = self._costs.get(document, DEFAULT_COST)
            await self._admit(cost)
            self._in_flight += cost
            try:
                answer = await self._post(document, variables, cost)
            except httpx.HTTPStatusError as exc:
                status = exc.response.status_code
                if status == 401 and not refreshed:
                    refreshed = True
                    await self._token(True)
                    continue
                if status == 401:
                    raise Unauthorized("the store refused the token after a refresh") from exc
                if status == 429:
                    throttled += 1
                    await self._throttled(throttled, _json_or_empty(exc.response), cost)
                    continue
                if status < 500:
                    raise AdminError(
                        f"Shopify answered {status}: {exc.response.text[:300]}"
                    ) from None
                failures = await self._back_off(failures, exc)
                continue
            except (httpx.TransportError, httpx.TimeoutException) as exc:
                failures = await self._back_off(failures, exc)
                continue
            extensions = answer.get("extensions") or {}
            requested = (extensions.get("cost") or {}).get("requestedQueryCost")
            if requested is not None:
                self._costs[document] = float(requested)
            errors = answer.get("errors") or []
            if any(_code(e) == "THROTTLED" for e in errors):
                throttled += 1
                await self._throttled(throttled, answer, float(requested or cost))
                continue
            if errors:
                raise AdminError("; ".join(str(e.get("message")) for e in errors)[:500])
            return answer.get("data")

    async def pages(
        self, document: str, variables: dict[str, Any], path: Sequence[str]
    ) -> AsyncIterator[Any]:
        """Every node of a cursor-paginated connection at ``path`` (e.g. ``("products",)``);
        the query takes ``$after: String`` and selects ``nodes`` and
        ``pageInfo { hasNextPage endCursor }``."""
        after: str | None = None
        while True:
            data = await self.query(document, {**variables, "after": after})
            connection = data
            for key in path:
                connection = connection[key]
            for node in connection["nodes"]:
                yield node
            info = connection["pageInfo"]
            if not info["hasNextPage"]:
                return
            after = info["endCursor"]

    async def _admit(self, cost: float) -> None:
        # Until a first answer tells us the bucket, one query at a time: a burst sent blind
        # would overdraw it. Then callers queue here in turn: each waits for its own cost and
        # counts it taken.
        while self.bucket.maximum is None and self._probing:
            await self._known.wait()
        if self.bucket.maximum is None:
            self._probing = True
            self._known.clear()
            return
        async with self._gate:
            while (wait := self.bucket.wait_for(cost, self._clock())) > 0:
                await self._sleep(wait)
            self.bucket.take(cost, self._clock())

    async def _post(
        self, document: str, variables: dict[str, Any] | None, cost: float
    ) -> dict[str, Any]:
        """Send one admitted query (its cost counted in flight until it is answered)."""
        try:
            token = await self._token(False)
            response = await self._http.post(
                self._endpoint,
                json={"query": document, "variables": variables or {}},
                headers={"X-Shopify-Access-Token": token},
            )
        finally:
            self._in_flight -= cost
            if self._probing:
                self._probing = False
                self._known.set()
        response.raise_for_status()
        answer: dict[str, Any] = response.json()
        status = ((answer.get("extensions") or {}).get("cost") or {}).get("throttleStatus")
        if status:
            self.bucket.update(status, self._clock(), self._in_flight)
        return answer

    async def _throttled(self, times: int, answer: dict[str, Any], cost: float) -> None:
        self.throttled += 1
        if times > MAX_THROTTLED:
            raise Unavailable("still throttled after many waits")
        status = ((answer.get("extensions") or {}).get("cost") or {}).get("throttleStatus")
        if status:
            self.bucket.update(status, self._clock(), self._in_flight)
            wait = self.bucket.wait_for(cost, self._clock())
        else:
            wait = BACKOFF_BASE_S * 2**times
        await self._sleep(max(wait, 0.05))

    async def _back_off(self, failures: int, error: Exception) -> int:
        failures += 1
        if failures >= MAX_ATTEMPTS:
            raise Unavailable(f"gave up after {failures} attempts: {error!r}") from error
        # Full jitter: clients that failed together do not come back together.
        await self._sleep(random.uniform(0, min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2**failures)))
        return failures


def _code(error: dict[str, Any]) -> str | None:
    return (error.get("extensions") or {}).get("code")


def _json_or_empty(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
