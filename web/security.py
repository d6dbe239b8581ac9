"""Security headers on every HTTP response the app sends.

The pages use only files the app serves itself: scripts (htmx, dashboard.js) and the style sheet
from /static, the rows fragment over XHR and the live feed over a same-origin WebSocket. Nothing
is inline (htmx's own indicator ``<style>`` is switched off in base.html), so the policy allows
'self' for exactly those and nothing else. Keep it that way: inline code needs a nonce here, not
'unsafe-inline'.
"""

from __future__ import annotations

from litestar.types import Message, Scope

from web.auth import SESSION_COOKIE

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        # 'self' covers ws:// and wss:// to the page's own host (CSP Level 3).
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)

SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
)
STATIC_PREFIX = "/static/"
_SESSION = f"{SESSION_COOKIE}=".encode()


async def add_security_headers(message: Message, scope: Scope) -> None:
    """A Litestar ``before_send`` hook: adds the headers a response does not set itself.

    As a hook on the application it also covers what no route handler answers (404, 405),
    error responses and static files. A response to a signed-in request (a session cookie or
    an API token) is a shop's data or an account's: ``no-store``, so that neither a shared
    machine's browser cache (the back button after a logout) nor a proxy keeps it. The static
    files are the same for everyone and stay cacheable.
    """
    if message["type"] != "http.response.start":
        return
    headers = list(message.get("headers", ()))
    names = {name.lower() for name, _ in headers}
    headers.extend(h for h in SECURITY_HEADERS if h[0] not in names)
    if b"cache-control" not in names and _signed_in(scope):
        headers.append((b"cache-control", b"no-store"))
    message["headers"] = headers


def _signed_in(scope: Scope) -> bool:
    if str(scope.get("path", "")).startswith(STATIC_PREFIX):
        return False
    for name, value in scope.get("headers", ()):
        if name == b"authorization" or (name == b"cookie" and _SESSION in value):
            return True
    return False
