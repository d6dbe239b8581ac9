"""A real SMTP server on loopback (aiosmtpd) that keeps what it receives, for the stack's mail."""

from __future__ import annotations

import email
import email.policy
import threading
import time
from collections.abc import Callable
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller

from ops.embedded import free_port


class Mailbox:
    """Also a server that misbehaves on demand: ``refused`` recipients get 550 at RCPT;
    ``on_mail`` runs when a client starts a transaction (MAIL FROM), ``on_data`` after a
    message was kept and before the 250 goes back; ``stop``/``start`` take it down and up on
    the same port."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self._lock = threading.Lock()
        self._controller: Controller | None = None
        self.port = 0
        self.refused: set[str] = set()
        self.on_mail: Callable[[], None] | None = None
        self.on_data: Callable[[], None] | None = None

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if self.on_mail is not None:
            self.on_mail()
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if address.lower() in self.refused:
            return "550 5.1.1 No such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self._lock:
            self.messages.append(parsed)  # type: ignore[arg-type]
        if self.on_data is not None:
            self.on_data()
        return "250 OK"

    def start(self) -> str:
        self.port = self.port or free_port()
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self._controller.start()
        return f"smtp://127.0.0.1:{self.port}?starttls=off"

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def to(self, address: str) -> list[EmailMessage]:
        with self._lock:
            return [m for m in self.messages if address in str(m["To"])]

    def wait_for(self, to: str, timeout_s: float = 15, subject: str = "") -> EmailMessage:
        """The newest message to ``to`` (in any case, as mail servers read it) whose subject
        holds ``subject``, waiting for one to arrive."""
        return self.wait_for_all(to, 1, timeout_s, subject)[-1]

    def wait_for_all(
        self, to: str, count: int, timeout_s: float = 15, subject: str = ""
    ) -> list[EmailMessage]:
        """Every such message, oldest first, once there are at least ``count``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                found = [
                    m
                    for m in self.messages
                    if to.lower() in str(m["To"]).lower() and subject in str(m["Subject"])
                ]
            if len(found) >= count:
                return found
            time.sleep(0.05)
        raise AssertionError(f"fewer than {count} mails to {to} about {subject!r} in {timeout_s}s")


MAILBOX = Mailbox()
