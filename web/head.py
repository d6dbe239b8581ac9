"""The methods a path answers: HEAD as GET without its body (RFC 9110 §9.3.2: uptime monitors
probe with HEAD, and Litestar routes a GET handler for GET only, 405 before), and OPTIONS
naming all of them."""

from __future__ import annotations

from litestar.routes import HTTPRoute
from litestar.types import ASGIApp, Message, Receive, Scope, Send


class HeadAsGet:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "HEAD":
            await self.app(scope, receive, send)
            return

        async def without_body(message: Message) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        # The headers stay GET's, Content-Length included, as HEAD's must.
        await self.app({**scope, "method": "GET"}, receive, without_body)  # type: ignore[arg-type]


async def allow_every_method(message: Message, scope: Scope) -> None:
    """A Litestar ``before_send`` hook: the ``Allow`` of OPTIONS and of a 405 names every
    method of its path.

    Litestar's own OPTIONS handler is made with the first handler registered on a path and
    names only that one's methods (``GET`` and ``POST`` of /login answered ``Allow: OPTIONS,
    POST``). Litestar's 405 names them all (routing found the whole route) but leaves out the
    HEAD that :class:`HeadAsGet` answers."""
    if message["type"] != "http.response.start" or not (
        message["status"] == 405 or (scope.get("method") == "OPTIONS" and message["status"] == 204)
    ):
        return
    given = next((v for n, v in message.get("headers", ()) if n.lower() == b"allow"), None)
    methods = {m.strip() for m in given.decode().split(",") if m.strip()} if given else set()
    if message["status"] != 405:  # OPTIONS: its route's handler knows the first handler's only
        template = scope.get("path_template")
        methods = {
            method
            for route in scope["app"].routes
            if isinstance(route, HTTPRoute) and route.path_format == template
            for method in route.methods
        }
    if "GET" in methods:
        methods.add("HEAD")
    if not methods:
        return
    headers = [(n, v) for n, v in message.get("headers", ()) if n.lower() != b"allow"]
    headers.append((b"allow", ", ".join(sorted(methods)).encode()))
    message["headers"] = headers
