"""Signed, single-purpose links: what an email can carry to let its reader change one thing
without signing in (today: the one-click unsubscribe of alert emails, RFC 8058).

A token names its purpose and what it acts on, and carries an HMAC-SHA256 of both under
``STOCKPULSE_SECRET_KEY``; a token made for one purpose never verifies for another.

>>> token = sign("k", "unsubscribe", ["shop.myshopify.com", "ops@shop.example"])
>>> verify("k", "unsubscribe", token)
['shop.myshopify.com', 'ops@shop.example']
>>> verify("k", "other-purpose", token) is None, verify("other-key", "unsubscribe", token) is None
(True, True)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

UNSUBSCRIBE = "unsubscribe"
# Not a link: the cookie of a browser that signed in to an account (web.accounts).
KNOWN_BROWSER = "known-browser"
# The key to the local mailbox of `stockpulse up` (web.mailbox), which `up` prints.
MAILBOX = "mailbox"
_MAX_TOKEN = 2048


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: str, purpose: str, body: str) -> bytes:
    return hmac.new(secret.encode(), f"{purpose}\n{body}".encode(), hashlib.sha256).digest()


def sign(secret: str, purpose: str, values: list[str]) -> str:
    body = _b64(json.dumps(values, separators=(",", ":")).encode())
    return f"{body}.{_b64(_mac(secret, purpose, body))}"


def mailbox_key(secret: str) -> str:
    """The key that opens the local mailbox: every mail the machine caught, whoever it was for.

    >>> verify("k", MAILBOX, mailbox_key("k")), verify("other", MAILBOX, mailbox_key("k"))
    (['all mail'], None)
    """
    return sign(secret, MAILBOX, ["all mail"])


def verify(secret: str, purpose: str, token: str) -> list[str] | None:
    """The values signed for ``purpose``, or None for anything forged, altered or malformed."""
    if len(token) > _MAX_TOKEN or token.count(".") != 1:
        return None
    body, mac = token.split(".")
    try:
        if not hmac.compare_digest(_unb64(mac), _mac(secret, purpose, body)):
            return None
        values = json.loads(_unb64(body))
    except ValueError:
        return None
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        return None
    return values
