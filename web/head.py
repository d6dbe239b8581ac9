"""HEAD answered as GET without its body (RFC 9110 §9.3.2): uptime monitors probe with HEAD,
and Litestar routes a GET handler for GET only (405 before)."""

from __future__ import annotations

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
