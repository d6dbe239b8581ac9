"""Confirming an account's email address: the page a verification link opens (a button, so
that a mail scanner fetching the link confirms nothing), the confirmation itself, and "send
the link again" for a signed-in account that has not confirmed yet."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import State
from litestar.params import FromQuery
from litestar.response import Redirect, Template

from connectors.db import verifications
from web import verify_mail
from web.accounts import LOGIN_WINDOW, FormBody, _check_form_csrf, _form_page, password_check
from web.auth import caller_of, require_caller

_SPENT = "That link has expired or was used already. Log in and ask for a new one."


class VerificationController(Controller):
    include_in_schema = False

    @get("/email/verify")
    async def confirm_page(
        self,
        request: Request[Any, Any, Any],
        state: State,
        token: FromQuery[str] = "",
        invitation: FromQuery[str] = "",
    ) -> Response[Any]:
        async with state.pool.connection() as conn:
            valid = bool(token) and await verifications.holder(conn, token) is not None
        if not valid:
            return _form_page(request, "verify_done.html", status=400, error=_SPENT)
        return _form_page(
            request,
            "verify.html",
            token=token,
            invitation=invitation,
            headers={"Cache-Control": "no-store"},  # the token is in the URL
        )

    @post("/email/verify")
    async def confirm(
        self,
        request: Request[Any, Any, Any],
        state: State,
        data: Annotated[dict[str, str], FormBody],
    ) -> Response[Any]:
        _check_form_csrf(request, data)
        token = data.get("token", "")
        invitation = data.get("invitation", "")
        # The account's password as well as the mailbox: the owner of an address clicking a
        # link they did not expect would otherwise vouch for an account someone else made with
        # it (and a confirmed account is added to a shop by its address).
        async with state.pool.connection() as conn:
            user = await verifications.holder(conn, token) if token else None
            if user is None:
                return _form_page(request, "verify_done.html", status=400, error=_SPENT)
            limited, ok = await password_check(conn, request, state, user, data.get("password", ""))
            user_id = await verifications.take(conn, token) if ok else None
            await conn.commit()
        if not ok:
            return _form_page(
                request,
                "verify.html",
                status=429 if limited else 401,
                token=token,
                invitation=invitation,
                error=(
                    "Too many failed attempts. Wait 15 minutes, or reset your password."
                    if limited
                    else "That is not this account's password."
                ),
                headers={
                    "Cache-Control": "no-store",
                    **({"Retry-After": str(int(LOGIN_WINDOW.total_seconds()))} if limited else {}),
                },
            )
        if user_id is None:
            return _form_page(request, "verify_done.html", status=400, error=_SPENT)
        # An invitation is accepted on its own page, signed in with the account's password:
        # confirming an address proves the mailbox, not who holds the account.
        if invitation:
            return Redirect(f"/invitations/{quote(invitation, safe='')}", status_code=303)
        caller = await caller_of(request)
        signed_in = caller is not None and caller.user_id == user_id
        return Redirect("/" if signed_in else "/login?verified=true", status_code=303)

    @post("/email/verify/resend")
    async def resend(self, request: Request[Any, Any, Any], state: State) -> Response[Any]:
        caller = await require_caller(request)
        if caller.email_verified:
            return Redirect("/", status_code=303)
        async with state.pool.connection() as conn:
            allowed = await verify_mail.may_mail(conn, caller.email)
            token = await verifications.create(conn, caller.user_id) if allowed else None
            await conn.commit()
        if token is None:
            return Template(
                "verify_done.html",
                context={
                    "caller": caller,
                    "error": "Several links went to your address in the last 15 minutes: wait,"
                    " then ask again.",
                },
                status_code=429,
                headers={"Retry-After": str(int(verify_mail.WINDOW.total_seconds()))},
            )
        await verify_mail.send_link(state, caller.email, token)
        return Template(
            "verify_done.html",
            context={
                "caller": caller,
                "notice": f"A new link is on its way to {caller.email}. It works once, within"
                " 24 hours.",
            },
        )
