"""Errors as the one asking reads them: a page for a browser that navigated to one, the JSON
the API has always answered for everyone else (scripts, htmx fragments, the schema's users),
in one shape: ``{"status_code": …, "detail": …}`` (Litestar's, plus ``extra`` for the fields
of a form). The webhook endpoint answers Shopify in its own words (``web/ingress.py``)."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException
from litestar.response import Template

# Paths a browser does not navigate to: their clients read JSON (or, for webhooks, Shopify).
_MACHINE_PATHS = ("/api/", "/webhooks/", "/ws/", "/schema", "/healthz", "/readyz", "/metrics")
_TITLES = {
    400: "That request could not be used",
    401: "Sign in first",
    403: "Not allowed",
    404: "Not found",
    405: "Not allowed here",
    409: "That conflicts with the shop as it is",
    413: "Too large",
    429: "Too many requests",
}


def wants_page(path: str, accept: str, htmx: bool = False) -> bool:
    """Whether a request is a browser's navigation, from its path and headers (the request
    deadline answers from the raw ASGI scope, before there is a Request)."""
    return not (path.startswith(_MACHINE_PATHS) or htmx) and "text/html" in accept


def error_body(status_code: int, detail: str) -> dict[str, Any]:
    return {"status_code": status_code, "detail": detail}


def _wants_page(request: Request[Any, Any, Any]) -> bool:
    headers = request.headers
    return wants_page(request.url.path, headers.get("accept", ""), bool(headers.get("hx-request")))


def http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    """Exception handler of HTTPException: the same status, headers (Allow, Retry-After) and
    words either way; the JSON keeps Litestar's shape, which the API has always had."""
    if not _wants_page(request):
        body = error_body(exc.status_code, exc.detail)
        if exc.extra:
            body["extra"] = exc.extra
        return Response(body, status_code=exc.status_code, headers=exc.headers)
    return Template(
        "error.html",
        context={
            "title": _TITLES.get(exc.status_code, "Something went wrong"),
            "detail": exc.detail,
            "status": exc.status_code,
        },
        status_code=exc.status_code,
        headers=exc.headers,
    )
