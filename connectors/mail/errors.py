"""What can go wrong when handing a message to the SMTP server, split by whether to retry."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import ClassVar


@dataclass(frozen=True)
class SmtpReply:
    """One reply of the SMTP server: its three-digit code and its text."""

    code: int
    text: str

    @property
    def is_temporary(self) -> bool:
        """4xx: the server asks to try again later (RFC 5321 §4.2.1)."""
        return 400 <= self.code < 500

    def __str__(self) -> str:
        return f"{self.code} {self.text}"


class MailError(Exception):
    """The message was not handed over; ``retryable`` says whether trying later may help.

    ``reply`` is the server's answer when there was one; ``refused`` lists, when every
    recipient was refused, what the server said about each.
    """

    retryable: ClassVar[bool]

    def __init__(
        self,
        message: str,
        *,
        reply: SmtpReply | None = None,
        refused: Mapping[str, SmtpReply] | None = None,
    ) -> None:
        super().__init__(message)
        self.reply = reply
        self.refused: Mapping[str, SmtpReply] = MappingProxyType(dict(refused or {}))


class TemporaryMailError(MailError):
    """The server could not be reached, dropped the connection, timed out or answered 4xx."""

    retryable = True


class PermanentMailError(MailError):
    """The server answered 5xx, or the configuration cannot work (TLS, credentials)."""

    retryable = False


def error_for_reply(
    context: str, reply: SmtpReply, refused: Mapping[str, SmtpReply] | None = None
) -> MailError:
    """The exception for a refusal: permanent for 5xx, temporary otherwise.

    Codes outside 5xx include smtplib's -1 for a garbled reply, which is more often a broken
    connection than a verdict on the message.
    """
    kind = PermanentMailError if 500 <= reply.code < 600 else TemporaryMailError
    return kind(f"{context}: {reply}", reply=reply, refused=refused)
