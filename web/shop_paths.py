"""A shop's pages and API under its domain in any case: Shopify names shops in lower case, and
so does every row here, so a link typed or pasted as ``/shops/DEMO.myshopify.com`` is sent on
to the lower-case path (308, keeping the method and body) rather than answered 404."""

from __future__ import annotations

import re
from typing import Any

from litestar import Request
from litestar.response import Redirect

from connectors.db.shops import SHOP_DOMAIN

_SHOP_PATH = re.compile(r"^(/(?:api/v1/)?shops/)([^/]+)(/.*)?$")


async def lower_case_shop(request: Request[Any, Any, Any]) -> Redirect | None:
    """Before every HTTP route: the redirect for a shop path not in lower case, else None."""
    found = _SHOP_PATH.match(request.url.path)
    if found is None or found.group(2) == found.group(2).lower():
        return None
    shop = found.group(2).lower()
    if not SHOP_DOMAIN.match(shop):
        return None
    target = f"{found.group(1)}{shop}{found.group(3) or ''}"
    if request.url.query:
        target = f"{target}?{request.url.query}"
    return Redirect(target, status_code=308)
