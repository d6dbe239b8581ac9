"""A shop's members (owners invite, everybody reads) and the caller's own API tokens."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get, post
from litestar.datastructures import State
from litestar.exceptions import NotFoundException, PermissionDeniedException
from pydantic import BaseModel, Field

from connectors.db import accounts
from web.auth import require_caller, require_shop


class MemberIn(BaseModel):
    email: str = Field(max_length=254)
    role: str = Field(pattern="^(owner|viewer)$")


class TokenIn(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    read_only: bool = False


class MembersController(Controller):
    path = "/api/v1"

    @get("/shops/{shop_domain:str}/members")
    async def list_members(
        self, request: Request[Any, Any, Any], state: State, shop_domain: str
    ) -> dict[str, Any]:
        await require_shop(request, shop_domain)
        async with state.pool.connection() as conn:
            found = await accounts.members(conn, shop_domain)
        return {"shop": shop_domain, "members": found}

    @post("/shops/{shop_domain:str}/members", status_code=200)
    async def add_member(
        self, request: Request[Any, Any, Any], state: State, shop_domain: str, data: MemberIn
    ) -> dict[str, Any]:
        """Give an existing account a role in the shop (owners only)."""
        await require_shop(request, shop_domain, owner=True)
        async with state.pool.connection() as conn:
            user = await accounts.user_by_email(conn, data.email)
            if user is None:
                raise NotFoundException("no account uses that email; ask them to sign up first")
            await accounts.add_member(conn, shop_domain, user["id"], data.role)
            await conn.commit()
        return {"shop": shop_domain, "email": user["email"], "role": data.role}

    @post("/tokens", status_code=201)
    async def create_token(
        self, request: Request[Any, Any, Any], state: State, data: TokenIn
    ) -> dict[str, Any]:
        """A new API token of the signed-in user, shown once. Made from a session only: a
        token cannot mint more tokens."""
        caller = await require_caller(request)
        if caller.via != "session":
            raise PermissionDeniedException("API tokens are created from a signed-in session")
        async with state.pool.connection() as conn:
            token = await accounts.create_api_token(
                conn, caller.user_id, data.name, read_only=data.read_only
            )
            await conn.commit()
        return {"name": data.name, "read_only": data.read_only, "token": token}
