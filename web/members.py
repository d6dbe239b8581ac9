"""A shop's members: everybody in the shop reads the list, owners invite and remove.

Inviting a member again changes their role at once. Any other address, whether or not an
account has it, gets an invitation (``connectors/db/invitations.py``) with its link mailed:
nobody joins a shop without accepting, and the owner is not told who has an account. Whoever
opens the link signs up or logs in (``web/accounts.py`` carries the token through) or, signed
in already, confirms, and becomes a member once the account's address is confirmed. A shop
always keeps an owner: removing or demoting the last one is refused (409).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from litestar import Controller, Request, Response, delete, get, post
from litestar.datastructures import State
from litestar.enums import RequestEncodingType
from litestar.exceptions import ClientException, NotFoundException
from litestar.params import Body, FromPath, FromQuery, JSONBody
from litestar.response import Redirect, Template
from pydantic import BaseModel, Field, ValidationError, field_validator

from connectors.db import accounts, invitations
from connectors.db.accounts import Caller
from web.accounts import email_problem
from web.auth import caller_of, require_caller, require_shop

FormBody = Body(media_type=RequestEncodingType.URL_ENCODED)
MAX_ID = 2**63 - 1


class MemberIn(BaseModel):
    email: str = Field(max_length=254)
    role: str = Field(pattern="^(owner|viewer)$")

    @field_validator("email")
    @classmethod
    def _valid_email(cls, value: str) -> str:
        # Checked here: an address that cannot be an account would get an invitation mailed.
        value = value.strip()
        if problem := email_problem(value):
            raise ValueError(problem)
        return value


class LastOwnerConflict(ClientException):
    status_code = 409


class TooManyInvitations(ClientException):
    status_code = 429


INVITES_PER_ADDRESS = 3  # from one shop, in INVITE_WINDOW
INVITES_PER_SHOP = 30
INVITE_WINDOW = timedelta(hours=1)


class MembersController(Controller):
    path = "/api/v1/shops/{shop_domain:str}"

    @get("/members")
    async def list_members(
        self, request: Request[Any, Any, Any], state: State, shop_domain: FromPath[str]
    ) -> dict[str, Any]:
        """The shop's members; for an owner, also the invitations not accepted yet."""
        _, _, role = await require_shop(request, shop_domain)
        async with state.pool.connection() as conn:
            found = await accounts.members(conn, shop_domain)
            waiting = await invitations.pending(conn, shop_domain) if role == "owner" else None
        answer: dict[str, Any] = {"shop": shop_domain, "members": found}
        if waiting is not None:
            answer["invitations"] = waiting
        return answer

    @post("/members", status_code=200)
    async def add_member(
        self,
        request: Request[Any, Any, Any],
        state: State,
        shop_domain: FromPath[str],
        data: JSONBody[MemberIn],
    ) -> dict[str, Any]:
        """Give an address a role in the shop (owners only): a member's role changes at once
        (``status: changed``); any other address gets an invitation by email that its
        confirmed account accepts (``status: invited``, ``mailed`` false when the mail server
        refused it)."""
        caller, shop, _ = await require_shop(request, shop_domain, owner=True)
        return await _invite(state, caller, shop, data.email, data.role)

    @delete("/members/{user_id:int}")
    async def remove_member(
        self,
        request: Request[Any, Any, Any],
        state: State,
        shop_domain: FromPath[str],
        user_id: FromPath[int],
    ) -> None:
        """Remove a member (owners only; never the last owner: 409)."""
        await require_shop(request, shop_domain, owner=True)
        await _remove(state, shop_domain, user_id)

    @delete("/invitations/{invitation_id:int}")
    async def cancel_invitation(
        self,
        request: Request[Any, Any, Any],
        state: State,
        shop_domain: FromPath[str],
        invitation_id: FromPath[int],
    ) -> None:
        """Withdraw an invitation not accepted yet (owners only): its link stops working."""
        await require_shop(request, shop_domain, owner=True)
        await _cancel(state, shop_domain, invitation_id)


class MembersPages(Controller):
    include_in_schema = False

    @get("/shops/{shop_domain:str}/members")
    async def page(
        self,
        request: Request[Any, Any, Any],
        state: State,
        shop_domain: FromPath[str],
        done: FromQuery[str] = "",
    ) -> Template:
        caller, shop, role = await require_shop(request, shop_domain)
        return await _page(state, shop, caller, role, notice=_NOTICES.get(done))

    @post("/shops/{shop_domain:str}/members")
    async def invite_form(
        self,
        request: Request[Any, Any, Any],
        state: State,
        shop_domain: FromPath[str],
        data: Annotated[dict[str, str], FormBody],
    ) -> Response[Any]:
        caller, shop, role = await require_shop(request, shop_domain, owner=True)
        try:
            sent = MemberIn(email=data.get("email", ""), role=data.get("role", ""))
        except ValidationError:
            return await _page(
                state,
                shop,
                caller,
                role,
                error="Enter a valid email address and a role.",
                email=data.get("email", ""),
                status_code=400,
            )
        try:
            outcome = await _invite(state, caller, shop, sent.email, sent.role)
        except (LastOwnerConflict, TooManyInvitations) as exc:
            return await _page(
                state, shop, caller, role, error=exc.detail, status_code=exc.status_code
            )
        if outcome["status"] == "changed":
            notice = f"{outcome['email']} is now {_a(sent.role)} of this shop."
        elif outcome["mailed"]:
            notice = f"Invitation sent to {sent.email}; the link works for 7 days."
        else:
            return await _page(
                state,
                shop,
                caller,
                role,
                error=f"The invitation to {sent.email} is saved, but the mail could not be sent."
                " Try inviting again later.",
                status_code=502,
            )
        return await _page(state, shop, caller, role, notice=notice)

    @post("/shops/{shop_domain:str}/members/{user_id:int}/remove")
    async def remove_form(
        self,
        request: Request[Any, Any, Any],
        state: State,
        shop_domain: FromPath[str],
        user_id: FromPath[int],
    ) -> Response[Any]:
        caller, shop, role = await require_shop(request, shop_domain, owner=True)
        try:
            await _remove(state, shop_domain, user_id)
        except LastOwnerConflict as exc:
            return await _page(state, shop, caller, role, error=exc.detail, status_code=409)
        return Redirect(f"/shops/{shop_domain}/members?done=removed", status_code=303)

    @post("/shops/{shop_domain:str}/invitations/{invitation_id:int}/cancel")
    async def cancel_form(
        self,
        request: Request[Any, Any, Any],
        state: State,
        shop_domain: FromPath[str],
        invitation_id: FromPath[int],
    ) -> Redirect:
        await require_shop(request, shop_domain, owner=True)
        await _cancel(state, shop_domain, invitation_id)
        return Redirect(f"/shops/{shop_domain}/members?done=cancelled", status_code=303)

    @get("/invitations/{token:str}")
    async def invitation(
        self, request: Request[Any, Any, Any], state: State, token: FromPath[str]
    ) -> Any:
        """What an invitation link opens: for a signed-in browser, a button to accept as the
        account it is signed in with (a link alone must not change anything, and the person
        may be signed in as someone else); otherwise sign-up and login carrying the token."""
        caller = await caller_of(request)
        async with state.pool.connection() as conn:
            found = await invitations.find(conn, token)
        return _invitation_page(
            token, found, caller if caller and caller.via == "session" else None
        )

    @post("/invitations/{token:str}")
    async def accept(
        self, request: Request[Any, Any, Any], state: State, token: FromPath[str]
    ) -> Any:
        caller = await require_caller(request)
        async with state.pool.connection() as conn:
            taken = await invitations.accept(conn, token, caller.user_id)
            # Not taken: spent or expired, or live but for another address or for this one
            # not confirmed yet (the page says which).
            found = None if taken else await invitations.find(conn, token)
            await conn.commit()
        if taken is None:
            return _invitation_page(token, found, caller, status=403 if found else 404)
        return Redirect(f"/shops/{taken['shop']}", status_code=303)


_NOTICES = {"removed": "Member removed.", "cancelled": "Invitation withdrawn."}


def _a(role: str) -> str:
    return "an owner" if role == "owner" else "a viewer"


async def _invite(
    state: State, caller: Caller, shop: dict[str, Any], email: str, role: str
) -> dict[str, Any]:
    domain = shop["domain"]
    async with state.pool.connection() as conn:
        # A member's role changes at once. Anyone else, with an account or not, is invited and
        # joins by accepting: adding an account outright gave it a shop it never asked for,
        # and "added" against "invited" told the owner who has an account.
        member = await accounts.member_by_email(conn, domain, email)
        if member is not None:
            if role != "owner":
                try:
                    await accounts.ensure_another_owner(conn, domain, member["user_id"])
                except accounts.LastOwner:
                    raise LastOwnerConflict(
                        detail="That is the shop's only owner: make someone else an owner first."
                    ) from None
            # Only an update: removed a moment ago by another owner, they are invited instead.
            if await accounts.change_role(conn, domain, member["user_id"], role):
                await invitations.withdraw_pending(conn, domain, email)
                await conn.commit()
                return {"shop": domain, "email": member["email"], "role": role, "status": "changed"}
        # Each invitation mails an address that never asked for it: an outside tester sent
        # one address 18 in seconds.
        limits = [
            (f"invite:{domain}:{email.lower()}", INVITES_PER_ADDRESS),
            (f"invite:{domain}", INVITES_PER_SHOP),
        ]
        if not await accounts.count_if_allowed(conn, limits, INVITE_WINDOW):
            raise TooManyInvitations(
                detail="Too many invitations from this shop, or to this address, in the last"
                " hour: try again later.",
                headers={"Retry-After": str(int(INVITE_WINDOW.total_seconds()))},
            )
        invitation_id, token = await invitations.create(conn, domain, email, role, caller.user_id)
        await conn.commit()
    link = f"{state.settings.stockpulse_base_url.rstrip('/')}/invitations/{token}"
    mailed = await state.mailer.send_invitation(
        email,
        link,
        shop=shop.get("name") or domain,
        role=role,
        invited_by=caller.email,
        lifetime=invitations.LIFETIME,
    )
    return {
        "shop": domain,
        "email": email,
        "role": role,
        "status": "invited",
        "invitation_id": invitation_id,
        "mailed": mailed,
    }


async def _remove(state: State, shop: str, user_id: int) -> None:
    if not 1 <= user_id <= MAX_ID:
        raise NotFoundException("no such member")
    async with state.pool.connection() as conn:
        try:
            removed = await accounts.remove_member(conn, shop, user_id)
        except accounts.LastOwner:
            raise LastOwnerConflict(
                detail="The last owner of a shop cannot be removed: make someone else an owner"
                " first."
            ) from None
        await conn.commit()
    if not removed:
        raise NotFoundException("no such member")


async def _cancel(state: State, shop: str, invitation_id: int) -> None:
    if not 1 <= invitation_id <= MAX_ID:
        raise NotFoundException("no such invitation")
    async with state.pool.connection() as conn:
        cancelled = await invitations.cancel(conn, shop, invitation_id)
        await conn.commit()
    if not cancelled:
        raise NotFoundException("no such invitation")


async def _page(
    state: State,
    shop: dict[str, Any],
    caller: Caller,
    role: str,
    *,
    notice: str | None = None,
    error: str | None = None,
    email: str = "",
    status_code: int = 200,
) -> Template:
    async with state.pool.connection() as conn:
        found = await accounts.members(conn, shop["domain"])
        waiting = await invitations.pending(conn, shop["domain"]) if role == "owner" else []
    return Template(
        "members.html",
        context={
            "shop": shop,
            "caller": caller,
            "role": role,
            "members": found,
            "invitations": waiting,
            "owners": sum(1 for m in found if m["role"] == "owner"),
            "notice": notice,
            "error": error,
            "email": email,
        },
        status_code=status_code,
    )


def _invitation_page(
    token: str, found: dict[str, Any] | None, caller: Caller | None, status: int | None = None
) -> Template:
    return Template(
        "invitation.html",
        context={"token": token, "invitation": found, "caller": caller},
        status_code=status or (200 if found else 404),
        # The token is in the URL: keep the page out of caches.
        headers={"Cache-Control": "no-store"},
    )
