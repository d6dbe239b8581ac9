"""``SMTP_URL``: where outgoing mail goes, how the connection is secured, who logs in.

Forms::

    smtp://user:pass@host:587                 plain, upgraded with STARTTLS when offered
    smtp://user:pass@host:587?starttls=require  refuses to go on without STARTTLS
    smtp://host:25?starttls=off               never upgrades (a local relay)
    smtps://user:pass@host:465                TLS from the first byte (implicit TLS)

User name and password are percent-decoded, so a Mailgun login is written
``postmaster%40mg.example.com``. Without a port, ``smtp`` uses 25 and ``smtps`` 465.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from enum import StrEnum
from urllib.parse import parse_qsl, quote, unquote, urlsplit

DEFAULT_PORTS = {"smtp": 25, "smtps": 465}


class TlsMode(StrEnum):
    """How the connection to the SMTP server is encrypted."""

    IMPLICIT = "implicit"
    """``smtps://``: TLS handshake before the first SMTP byte."""
    STARTTLS_REQUIRED = "require"
    """``?starttls=require``: a server that does not offer STARTTLS is an error."""
    STARTTLS_IF_OFFERED = "auto"
    """The default of ``smtp://``: upgrade when the server offers STARTTLS."""
    OFF = "off"
    """``?starttls=off``: stay in plain text even when the server offers STARTTLS."""


_STARTTLS_CHOICES = {
    TlsMode.STARTTLS_REQUIRED.value,
    TlsMode.STARTTLS_IF_OFFERED.value,
    TlsMode.OFF.value,
}


@dataclass(frozen=True)
class SmtpEndpoint:
    """A parsed ``SMTP_URL``. ``str()`` of it is safe to log: the password is left out."""

    host: str
    port: int
    tls: TlsMode
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @property
    def is_loopback(self) -> bool:
        """Traffic to this host never leaves the machine, so plain text exposes nothing."""
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    def __str__(self) -> str:
        scheme = "smtps" if self.tls is TlsMode.IMPLICIT else "smtp"
        user = f"{quote(self.username, safe='')}@" if self.username else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        query = (
            ""
            if self.tls in (TlsMode.IMPLICIT, TlsMode.STARTTLS_IF_OFFERED)
            else f"?starttls={self.tls.value}"
        )
        return f"{scheme}://{user}{host}:{self.port}{query}"


def parse_smtp_url(url: str) -> SmtpEndpoint:
    """Parse an ``SMTP_URL``; a ValueError names the faulty part but never echoes the URL.

    >>> endpoint = parse_smtp_url("smtp://postmaster%40mg.example.com:s3cret@smtp.mailgun.org:587")
    >>> endpoint.username, endpoint.host, endpoint.port, endpoint.tls.value
    ('postmaster@mg.example.com', 'smtp.mailgun.org', 587, 'auto')
    >>> print(endpoint)
    smtp://postmaster%40mg.example.com@smtp.mailgun.org:587
    >>> parse_smtp_url("smtps://relay.example.com").port
    465
    """
    # The URL carries the password: no message below may include it, hence `from None`.
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise ValueError("SMTP_URL is not a valid URL (check the host and port)") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise ValueError(f"SMTP_URL must start with smtp:// or smtps://, not {scheme or '?'}://")
    if not parts.hostname:
        raise ValueError("SMTP_URL has no host")
    if parts.path not in ("", "/") or parts.fragment:
        raise ValueError("SMTP_URL takes no path or fragment after the host and port")

    username = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password) if parts.password is not None else None
    if password is not None and not username:
        raise ValueError("SMTP_URL has a password but no user name")
    if username and password is None:
        raise ValueError("SMTP_URL has a user name but no password (write user:password@host)")
    if username and not (username.isascii() and password and password.isascii()):
        # smtplib encodes AUTH credentials as ASCII and would fail at the first send.
        raise ValueError("SMTP_URL user name and password must be non-empty ASCII")

    return SmtpEndpoint(
        host=parts.hostname,
        port=port if port is not None else DEFAULT_PORTS[scheme],
        tls=_tls_mode(scheme, parts.query),
        username=username or None,
        password=password if username else None,
    )


def _tls_mode(scheme: str, query: str) -> TlsMode:
    try:
        options = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        raise ValueError("SMTP_URL has a malformed query string") from None
    names = [name for name, _ in options]
    unknown = sorted(set(names) - {"starttls"})
    if unknown:
        raise ValueError(f"SMTP_URL has unknown option(s) {', '.join(unknown)}; only starttls")
    if len(names) > 1:
        raise ValueError("SMTP_URL gives starttls more than once")
    if scheme == "smtps":
        if options:
            raise ValueError("starttls does not apply to smtps://, which is TLS from the start")
        return TlsMode.IMPLICIT
    if not options:
        return TlsMode.STARTTLS_IF_OFFERED
    choice = options[0][1].lower()
    if choice not in _STARTTLS_CHOICES:
        raise ValueError(
            f"SMTP_URL starttls must be one of {', '.join(sorted(_STARTTLS_CHOICES))},"
            f" not {choice!r}"
        )
    return TlsMode(choice)
