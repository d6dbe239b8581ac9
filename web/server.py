"""The HTTP protocol ``stockpulse web`` serves with: uvicorn's httptools one, plus deadlines.

uvicorn closes a keep-alive connection that stays idle after a response, but nothing bounds a
client that is slow to *send*: a connection that never sends a byte, or sends its request line
and headers a byte at a time (slowloris), holds a socket and a file descriptor for as long as it
likes, and so does a client trickling a request body that no handler reads. Here a connection
has ``HTTP_HEADER_TIMEOUT_SECONDS`` (settings) to deliver the headers of each request, counted
from the moment it connects or starts that request; it is closed, without an answer, when the
time is up.

The deadline runs only while the server is waiting for the client and the application is not
working on a request: from connecting or from a request's first byte to its last header, and
while the unread rest of a body arrives after the answer has gone out. A body the application
reads is the application's to bound (the webhook ingress does); WebSocket connections leave
this protocol after the handshake, and idle keep-alive connections keep uvicorn's own
``timeout_keep_alive``. A request line and headers over :data:`MAX_HEADER_BYTES` get a 400.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from connectors.settings import get_settings

log = logging.getLogger(__name__)

# Shopify's headers and our pages' cookies fit many times over; more is an attack on memory.
MAX_HEADER_BYTES = 64 * 1024


class HeadersTooLarge(Exception):
    """Raised from a parser callback: uvicorn answers 400 and closes the connection."""


class DeadlineHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline for receiving each request's headers.

    Give the class itself to ``uvicorn.run(http=...)``: with several workers uvicorn pickles its
    config, and a module-level class travels by name.
    """

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.header_timeout = get_settings().http_header_timeout_seconds
        self._deadline: asyncio.TimerHandle | None = None
        self._upgraded = False
        self._header_bytes = 0

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)  # cancels the keep-alive timer first, whatever ``data`` is
        # Bytes that neither begin a request nor are read by the application (a stray CRLF, the
        # rest of a body answered without reading it) must not leave the connection untimed.
        if (
            self._deadline is None
            and self.timeout_keep_alive_task is None
            and not self._upgraded
            and not self._busy()
            and not self.transport.is_closing()
        ):
            self._arm()

    # httptools parser callbacks

    def on_url(self, url: bytes) -> None:
        self._count_header_bytes(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_header_bytes(len(name) + len(value))
        super().on_header(name, value)

    def _count_header_bytes(self, n: int) -> None:
        self._header_bytes += n
        if self._header_bytes > MAX_HEADER_BYTES:
            raise HeadersTooLarge

    def on_message_begin(self) -> None:
        self._header_bytes = 0
        super().on_message_begin()
        # A request pipelined behind one still being answered is not timed: closing would cut
        # that answer short, and keep-alive or this deadline take over once it is out.
        if self._deadline is None and not self._busy():
            self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        if self.cycle is not None and self.cycle.response_complete:
            # The unread end of an answered request's body is in: the connection is idle now
            # and gets a fresh deadline from data_received.
            self._disarm()
        super().on_message_complete()

    def handle_websocket_upgrade(self) -> None:
        self._disarm()
        self._upgraded = True
        super().handle_websocket_upgrade()

    # The deadline

    def _busy(self) -> bool:
        """Whether the application is working on a request of this connection."""
        return bool(self.pipeline) or (self.cycle is not None and not self.cycle.response_complete)

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self.header_timeout, self._deadline_passed)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _deadline_passed(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            log.debug("closing %s: no request headers in %ss", self.client, self.header_timeout)
            self.transport.close()
