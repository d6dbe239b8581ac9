"""A real SMTP server on loopback (aiosmtpd) that keeps what it receives, for the stack's mail."""

from __future__ import annotations

import email
import email.policy
import threading
import time
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller

from ops.embedded import free_port


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self._lock = threading.Lock()
        self._controller: Controller | None = None
        self.port = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self._lock:
            self.messages.append(parsed)  # type: ignore[arg-type]
        return "250 OK"

    def start(self) -> str:
        self.port = free_port()
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self._controller.start()
        return f"smtp://127.0.0.1:{self.port}?starttls=off"

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()

    def wait_for(self, to: str, timeout_s: float = 15) -> EmailMessage:
        """The newest message to ``to``, waiting for one to arrive."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                found = [m for m in self.messages if to in str(m["To"])]
            if found:
                return found[-1]
            time.sleep(0.05)
        raise AssertionError(f"no mail to {to} in {timeout_s}s")


MAILBOX = Mailbox()
