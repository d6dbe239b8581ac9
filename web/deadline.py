"""When the database cannot answer a page or an API request: 503 and ``Retry-After``, never a
request that hangs or a 500.

A paused or partitioned PostgreSQL accepts a query and never answers it, and no server-side
timeout can fire in a server that is not running, so without a deadline a dashboard page or an
API call waits for as long as the outage lasts, holding its connection. After the deadline the
caller is told to retry (503, ``Retry-After``); the handler is cancelled in the background, where
psycopg cancels its query or drops the connection (at most 10 s more), without holding the
answer back. A response that has started (a download) is left to finish.

The webhook ingress, the probes and connecting a store have limits of their own and are not
wrapped. A database that refuses connections or drops one (:func:`database_unavailable`) gets
the same answer at once.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

from litestar import Request, Response
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from web.error_pages import error_body, wants_page

log = logging.getLogger(__name__)

# Connecting a store spends a single-use code at Shopify and then stores what it gave: cut
# between the two, the merchant would have to install again. Those calls have httpx's limits.
UNWRAPPED = ("/webhooks/", "/healthz", "/readyz", "/metrics", "/static/", "/shopify/", "/connect")
RETRY_AFTER_S = 5
_abandoned: set[asyncio.Task[None]] = set()  # referenced until their cancellation completes


def request_deadline(seconds: float) -> Callable[[ASGIApp], ASGIApp]:
    """Litestar middleware factory for :class:`RequestDeadline`."""

    def wrap(app: ASGIApp) -> ASGIApp:
        return RequestDeadline(app, seconds)

    return wrap


class RequestDeadline:
    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] != "http" or path.startswith(UNWRAPPED):
            await self.app(scope, receive, send)
            return
        started = False
        given_up = False

        async def send_unless_given_up(message: Message) -> None:
            nonlocal started
            if given_up:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        handler = asyncio.ensure_future(self.app(scope, receive, send_unless_given_up))
        try:
            done, _ = await asyncio.wait({handler}, timeout=self.seconds)
        except BaseException:  # this request cancelled (the server stopping): its handler too
            handler.cancel()
            _abandoned.add(handler)
            handler.add_done_callback(_forget)
            raise
        if handler in done or started:
            await handler
            return
        given_up = True
        handler.cancel()
        _abandoned.add(handler)
        handler.add_done_callback(_forget)
        log.warning("%s %s: no answer within %.0f s (503)", scope.get("method"), path, self.seconds)
        await _unavailable(scope, send)


def _forget(task: asyncio.Task[None]) -> None:
    _abandoned.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.info("an abandoned request ended with %r", task.exception())


MESSAGE = "The database is not answering. Try again in a few seconds."
# A deadline can also pass on a slow mail server (a page that sends mail waits for it).
LATE = "The server could not answer in time. Try again in a few seconds."


def database_unavailable(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """Exception handler of psycopg's OperationalError and the pool's timeout."""
    log.warning("%s %s: database unavailable (%s)", request.method, request.url.path, exc)
    headers = {"Retry-After": str(RETRY_AFTER_S), "Cache-Control": "no-store"}
    if wants_page(request.url.path, request.headers.get("accept", "")):
        return Response(MESSAGE, status_code=503, media_type="text/plain", headers=headers)
    return Response(error_body(503, MESSAGE), status_code=503, headers=headers)


async def _unavailable(scope: Scope, send: Send) -> None:
    accept = dict(scope.get("headers", [])).get(b"accept", b"").decode("latin-1")
    if wants_page(scope.get("path", ""), accept):
        body = LATE.encode()
        content_type = b"text/plain; charset=utf-8"
    else:
        body = json.dumps(error_body(503, LATE)).encode()
        content_type = b"application/json"
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", str(RETRY_AFTER_S).encode()),
                (b"cache-control", b"no-store"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})
