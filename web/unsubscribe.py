"""One-click unsubscribe from alert emails (RFC 8058), from the link in their
``List-Unsubscribe`` header.

``GET`` asks "stop alert emails …?" and changes nothing: link scanners and mail previews
fetch links on their own. ``POST`` turns the recipient off; mail clients send it themselves
with the body ``List-Unsubscribe=One-Click``, no cookies and no CSRF token.

These are the only state-changing requests without a session and without CSRF. That is safe
because the token in the path is the authority: an HMAC over its purpose, the shop and the
address (``connectors/links.py``), which nobody without ``STOCKPULSE_SECRET_KEY`` can make, and
it can do one thing only, to one recipient, and nothing worse than stop their emails. CSRF is
enforced in ``web.auth.require_caller``, which every other state-changing handler calls (no
middleware applies it), so the exemption is exactly that these two handlers never call it.
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get, post
from litestar.datastructures import State
from litestar.params import FromPath
from litestar.response import Template

from connectors import links
from connectors.db import alerts as db
from connectors.db.shops import SHOP_DOMAIN, get_shop

# The token is a credential: keep it out of caches and away from search engines.
_HEADERS = {"Cache-Control": "no-store", "X-Robots-Tag": "noindex"}


def _target(state: State, token: str) -> tuple[str, str] | None:
    values = links.verify(state.settings.stockpulse_secret_key, links.UNSUBSCRIBE, token)
    if values is None or len(values) != 2 or not SHOP_DOMAIN.match(values[0]):
        return None
    return values[0], values[1]


async def _shop_name(state: State, shop: str) -> str:
    async with state.pool.connection() as conn:
        found = await get_shop(conn, shop)
        await conn.commit()
    return (found["name"] if found else None) or shop


def _invalid() -> Template:
    return Template(
        "unsubscribe.html", context={"step": "invalid"}, status_code=400, headers=_HEADERS
    )


class UnsubscribeController(Controller):
    path = "/alerts/unsubscribe"
    include_in_schema = False

    @get("/{token:str}")
    async def confirm(self, state: State, token: FromPath[str]) -> Template:
        target = _target(state, token)
        if target is None:
            return _invalid()
        shop, email = target
        return Template(
            "unsubscribe.html",
            context={
                "step": "confirm",
                "shop_name": await _shop_name(state, shop),
                "email": email,
                "token": token,
            },
            headers=_HEADERS,
        )

    @post("/{token:str}", status_code=200)
    async def unsubscribe(
        self, request: Request[Any, Any, Any], state: State, token: FromPath[str]
    ) -> Template:
        # The body (List-Unsubscribe=One-Click) is not needed: the token says it all, and a
        # client that sends something else still meant to unsubscribe.
        target = _target(state, token)
        if target is None:
            return _invalid()
        shop, email = target
        async with state.pool.connection() as conn:
            # Idempotent: a second POST (or one for a recipient removed since) still says done.
            await db.unsubscribe(conn, shop, email)
            await conn.commit()
        return Template(
            "unsubscribe.html",
            context={"step": "done", "shop_name": await _shop_name(state, shop), "email": email},
            headers=_HEADERS,
        )
