"""The message callers hand to a sender, validated when it is made, and its MIME rendering."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import EmailPolicy
from email.utils import format_datetime, formataddr
from types import MappingProxyType

from email_validator import EmailNotValidError, validate_email

# RFC 5322 §2.2: a field name is printable US-ASCII except the colon.
_FIELD_NAME = re.compile(r"[!-9;-~]+")
# Specials (RFC 5322 §3.2.3) would change how an address header is read: "a@b.com>, x@y".
_ADDRESS_SPECIALS = set('<>()[]\\,;:"')
_MESSAGE_ID = re.compile(r"<[^<>@\s]+@[^<>@\s]+>")
_HARD_LINE_LIMIT = 998  # RFC 5322 §2.1.1, without the CRLF

# The sender owns these: letting a caller set them would duplicate or contradict ours.
RESERVED_HEADERS = frozenset(
    {
        "from",
        "sender",
        "to",
        "cc",
        "bcc",
        "subject",
        "message-id",
        "date",
        "mime-version",
        "content-type",
        "content-transfer-encoding",
    }
)


def refuse_unsafe_header_text(what: str, value: str) -> None:
    """ValueError when ``value`` could end a header line early and start a forged one.

    Besides CR and LF this refuses every other control or line-separator character,
    because Python's email package splits header text with ``str.splitlines``, which
    also breaks on U+0085, U+2028, vertical tab, form feed and friends.
    """
    if "\r" in value or "\n" in value:
        raise ValueError(f"{what} must not contain a line break (CR or LF)")
    for char in value:
        if unicodedata.category(char) in ("Cc", "Zl", "Zp") and char != "\t":
            raise ValueError(f"{what} must not contain the control character {char!r}")


def one_line(value: str, limit: int = 200) -> str:
    r"""Outside text (a product title, a shop's name) made fit for a header: each line break or
    control character a space, runs of spaces one, at most ``limit`` characters. A title
    Shopify accepts may hold any of them; refusing the header would lose the whole email.

    >>> one_line("Summer\u2028Tee\r\nBcc: x@evil.example")
    'Summer Tee Bcc: x@evil.example'
    >>> one_line("a" * 300, limit=8)
    'aaaaaaa…'
    """
    cleaned = "".join(
        " " if unicodedata.category(char) in ("Cc", "Zl", "Zp") else char for char in value
    )
    cleaned = " ".join(cleaned.split())
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"


def check_address(what: str, address: str) -> None:
    """Minimal sanity of an address: ``local@domain``, one ``@``, no spaces, no specials."""
    refuse_unsafe_header_text(what, address)
    if any(char.isspace() for char in address):
        raise ValueError(f"{what} {address!r} is not an email address: it contains a space")
    if address.count("@") != 1:
        raise ValueError(f"{what} {address!r} is not an email address: it needs exactly one @")
    local, domain = address.split("@")
    if not local or not domain:
        raise ValueError(f"{what} {address!r} is not an email address: a side of @ is empty")
    special = next((char for char in address if char in _ADDRESS_SPECIALS), None)
    if special is not None:
        raise ValueError(f"{what} {address!r} is not an email address: it contains {special!r}")


def mailbox(what: str, address: str) -> str:
    """``address`` as mail reaches it through any SMTP server: the part before @ in plain
    letters, the domain lowercased, an international domain in its xn-- form. ValueError
    saying what is wrong, by email-validator's rules (DNS not asked): ``a@b``, ``a..b@`` and
    ``a@-example.com`` were accepted as alert recipients (an outside test).

    >>> mailbox("recipient", "Bob@Exämple.COM")
    'Bob@xn--exmple-cua.com'
    >>> mailbox("recipient", "ops@localhost")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: recipient 'ops@localhost' is not an email address: ... should have a period.
    """
    check_address(what, address)
    try:
        # strict: a part before @ past 64 characters too, which many servers refuse.
        found = validate_email(
            address, check_deliverability=False, allow_smtputf8=False, strict=True
        )
    except EmailNotValidError as exc:
        raise ValueError(f"{what} {address!r} is not an email address: {exc}") from None
    return str(found.ascii_email)


@dataclass(frozen=True)
class OutgoingMail:
    """One message to send; it refuses (ValueError) anything that could forge a header.

    ``message_id`` is ``<unique@domain>``: give the same one when sending the same message
    again so mail clients and de-duplicating servers see one message; None lets the sender
    generate one. ``headers`` are extra header fields, e.g. ``List-Unsubscribe``.
    """

    to: Sequence[str]
    subject: str
    text: str
    html: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    message_id: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.to, str):
            raise TypeError("OutgoingMail.to is a list of addresses, not one string")
        recipients = tuple(dict.fromkeys(self.to))  # the same inbox needs one RCPT
        if not recipients:
            raise ValueError("OutgoingMail needs at least one recipient")
        for address in recipients:
            check_address("recipient", address)
        refuse_unsafe_header_text("subject", self.subject)
        seen: set[str] = set()
        for name, value in self.headers.items():
            if not _FIELD_NAME.fullmatch(name):
                raise ValueError(f"header name {name!r} must be printable ASCII without ':'")
            if name.lower() in RESERVED_HEADERS:
                raise ValueError(f"header {name} is set by the sender, not by the message")
            if name.lower() in seen:
                raise ValueError(f"header {name} is given twice")
            seen.add(name.lower())
            refuse_unsafe_header_text(f"header {name}", value)
        if self.message_id is not None:
            refuse_unsafe_header_text("message_id", self.message_id)
            if not _MESSAGE_ID.fullmatch(self.message_id):
                raise ValueError(
                    f"message_id {self.message_id!r} must look like <unique-part@domain>"
                )
        # Frozen, so the normalised copies go in through object.__setattr__.
        object.__setattr__(self, "to", recipients)
        object.__setattr__(self, "headers", MappingProxyType(dict(self.headers)))


class _SmtpPolicy(EmailPolicy):
    """SMTP line endings and 7-bit bodies, without mangling long ASCII header values.

    At the usual 78 columns, Python folds an ASCII header holding a token longer than a line
    (a ``List-Unsubscribe`` URL) into RFC 2047 encoded words, which such headers do not allow
    and mail clients do not decode. ASCII values may therefore run to the hard limit of 998;
    non-ASCII values keep 78 so their encoded words stay within RFC 2047's 75 characters.
    """

    def fold_binary(self, name: str, value: str) -> bytes:
        if value.isascii():
            return EmailPolicy.fold_binary(
                self.clone(max_line_length=_HARD_LINE_LIMIT), name, value
            )
        return super().fold_binary(name, value)


# 7bit makes bodies quoted-printable or base64 when needed, so no server needs 8BITMIME.
SMTP_POLICY = _SmtpPolicy(linesep="\r\n", cte_type="7bit")
# Addresses outside ASCII can only travel raw, to a server that announced SMTPUTF8.
SMTPUTF8_POLICY = SMTP_POLICY.clone(utf8=True, cte_type="8bit")


def from_header(from_address: str, from_name: str | None) -> str:
    """The From header value, ready to send: ASCII, the name quoted or RFC 2047-encoded."""
    if not from_address.isascii():
        raise ValueError(f"from_address {from_address!r} must be ASCII (use punycode domains)")
    return formataddr((from_name, from_address), charset="utf-8")


def needs_smtputf8(recipients: Sequence[str]) -> bool:
    return not all(address.isascii() for address in recipients)


def render(mail: OutgoingMail, from_value: str, message_id: str) -> EmailMessage:
    """The MIME message: text/plain, or multipart/alternative when there is an HTML body.

    ``from_value`` comes from ``from_header`` and is stored as it is: parsed and refolded
    by Python 3.11's email package, a display name such as ``Zoë, alerts`` loses the
    quoting of its comma and turns into two addresses.
    """
    message = EmailMessage(policy=SMTP_POLICY)
    message.set_raw("From", from_value)
    message["To"] = ", ".join(mail.to)
    message["Subject"] = mail.subject
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = message_id
    for name, value in mail.headers.items():
        message[name] = value
    message.set_content(mail.text)
    if mail.html is not None:
        message.add_alternative(mail.html, subtype="html")
    return message
