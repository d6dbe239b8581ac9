"""The signed-in user's API tokens: the "API tokens" page and its JSON equivalents.

Tokens are minted and revoked from a signed-in session only: a leaked token can then neither
make more tokens nor lock its user's other scripts out. A new token's value is shown once, in
the answer that made it; the database keeps its SHA-256. Revoking deletes the row, so the
token is refused from the next request on.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from litestar import Controller, Request, Response, delete, get, post
from litestar.datastructures import State
from litestar.enums import RequestEncodingType
from litestar.exceptions import NotFoundException, PermissionDeniedException
from litestar.params import Body, FromPath, FromQuery, JSONBody
from litestar.response import Redirect, Template
from pydantic import BaseModel, Field, field_validator

from connectors.db import accounts
from connectors.db.accounts import Caller
from web.accounts import unprintable
from web.auth import SESSION_COOKIE, LoginRequired, require_caller

FormBody = Body(media_type=RequestEncodingType.URL_ENCODED)
NAME_MAX = 100
MAX_ID = 2**63 - 1


class TokenIn(BaseModel):
    name: str = Field(min_length=1, max_length=NAME_MAX, pattern=r"\S")
    read_only: bool = False

    @field_validator("name")
    @classmethod
    def _printable(cls, value: str) -> str:
        if unprintable(value):
            raise ValueError("a token name is one line of printable text")
        return value


class TokensController(Controller):
    @get("/api/v1/tokens")
    async def list_tokens(self, request: Request[Any, Any, Any], state: State) -> dict[str, Any]:
        """The caller's API tokens, newest first (never their values)."""
        caller = await require_caller(request)
        async with state.pool.connection() as conn:
            found = await accounts.api_tokens(conn, caller.user_id)
        return {"tokens": found}

    @post("/api/v1/tokens", status_code=201)
    async def create_token(
        self, request: Request[Any, Any, Any], state: State, data: JSONBody[TokenIn]
    ) -> dict[str, Any]:
        """A new API token of the signed-in user, shown once. Made from a session only."""
        caller = _from_session(await require_caller(request))
        async with state.pool.connection() as conn:
            token = await _made_in_session(conn, request, caller, data.name.strip(), data.read_only)
        return {"name": data.name.strip(), "read_only": data.read_only, "token": token}

    @delete("/api/v1/tokens/{token_id:int}")
    async def revoke_token(
        self, request: Request[Any, Any, Any], state: State, token_id: FromPath[int]
    ) -> None:
        """Revoke one of the caller's tokens (404 for anyone else's). From a session only."""
        caller = _from_session(await require_caller(request))
        await _revoke(state, caller, token_id)

    @get("/account/tokens", include_in_schema=False)
    async def page(
        self, request: Request[Any, Any, Any], state: State, revoked: FromQuery[bool] = False
    ) -> Template:
        caller = await require_caller(request)
        notice = "Token revoked: it no longer works." if revoked else None
        return await _page(state, caller, notice=notice)

    @post("/account/tokens", include_in_schema=False)
    async def create_form(
        self,
        request: Request[Any, Any, Any],
        state: State,
        data: Annotated[dict[str, str], FormBody],
    ) -> Template:
        caller = _from_session(await require_caller(request))
        name = (data.get("name") or "").strip()
        read_only = data.get("read_only") in ("on", "true", "1")
        if not name or len(name) > NAME_MAX or unprintable(name):
            return await _page(
                state,
                caller,
                error=f"Give the token a name of 1 to {NAME_MAX} characters.",
                status_code=400,
            )
        async with state.pool.connection() as conn:
            token = await _made_in_session(conn, request, caller, name, read_only)
        # The only answer that ever holds the secret: no cache, no redirect to a page without it.
        return await _page(
            state, caller, created={"name": name, "read_only": read_only, "token": token}
        )

    @post("/account/tokens/{token_id:int}/revoke", include_in_schema=False)
    async def revoke_form(
        self, request: Request[Any, Any, Any], state: State, token_id: FromPath[int]
    ) -> Response[Any]:
        caller = _from_session(await require_caller(request))
        await _revoke(state, caller, token_id)
        return Redirect("/account/tokens?revoked=true", status_code=303)


def _from_session(caller: Caller) -> Caller:
    if caller.via != "session":
        raise PermissionDeniedException("API tokens are managed from a signed-in session")
    return caller


async def _revoke(state: State, caller: Caller, token_id: int) -> None:
    if not 1 <= token_id <= MAX_ID:
        raise NotFoundException("unknown token")
    async with state.pool.connection() as conn:
        found = await accounts.revoke_api_token(conn, caller.user_id, token_id)
        await conn.commit()
    if not found:
        raise NotFoundException("unknown token")


def _utc(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if moment else None


async def _page(
    state: State,
    caller: Caller,
    *,
    created: dict[str, Any] | None = None,
    error: str | None = None,
    notice: str | None = None,
    status_code: int = 200,
) -> Template:
    async with state.pool.connection() as conn:
        tokens = [
            {**t, "created": _utc(t["created_at"]), "last_used": _utc(t["last_used_at"])}
            for t in await accounts.api_tokens(conn, caller.user_id)
        ]
    return Template(
        "tokens.html",
        context={
            "caller": caller,
            "tokens": tokens,
            "created": created,
            "error": error,
            "notice": notice,
        },
        status_code=status_code,
        headers={"Cache-Control": "no-store"},
    )


async def _made_in_session(
    conn: Any, request: Request[Any, Any, Any], caller: Caller, name: str, read_only: bool
) -> str:
    """A new token of the caller, made only while its session still stands: a password reset
    committed since the request began has ended the session, and a token made after it would
    outlive the reset (LoginRequired then)."""
    await accounts.lock_account(conn, caller.user_id)
    if not await accounts.session_alive(
        conn, caller.user_id, request.cookies.get(SESSION_COOKIE, "")
    ):
        raise LoginRequired
    token = await accounts.create_api_token(conn, caller.user_id, name, read_only=read_only)
    await conn.commit()
    return token
