"""Sign-up, login, logout, password reset, and the list of the caller's shops.

Sign-up does not sign in: it mails a link that confirms the address (``web/verification.py``)
and answers "check your email" whether or not the address has an account, so the page tells
nobody who has one. Logging in needs no confirmed address; what is given to an address (an
invitation, being added to a shop) waits for it."""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
import unicodedata
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any
from urllib.parse import quote

from litestar import Controller, Request, Response, get, post
from litestar.background_tasks import BackgroundTask
from litestar.datastructures import Cookie, State
from litestar.enums import RequestEncodingType
from litestar.exceptions import PermissionDeniedException
from litestar.params import Body, FromQuery
from litestar.response import Redirect, Template

from connectors import links
from connectors.db import accounts, invitations, verifications
from connectors.mail.message import mailbox
from connectors.passwords import hash_password, needs_rehash, verify_password, weakness
from web import verify_mail
from web.auth import (
    FORM_CSRF_COOKIE,
    SESSION_COOKIE,
    SESSION_LIFETIME,
    caller_of,
    require_caller,
    safe_next,
    secure_cookies,
)

log = logging.getLogger(__name__)

# Failed logins allowed in the window, then 429 until it passes: per account from one address,
# per address, and per account from everywhere. The last stops guessing spread over many
# addresses; a browser that has signed in to the account before is exempt from it, so that
# whoever knows an address cannot lock its owner out.
LOGIN_WINDOW = timedelta(minutes=15)
FAILURES_PER_ACCOUNT_AND_ADDRESS = 5
FAILURES_PER_ADDRESS = 20
FAILURES_PER_ACCOUNT = 50
RESETS_PER_ACCOUNT = 5
KNOWN_BROWSER_COOKIE = "sp_known"
KNOWN_BROWSER_LIFETIME = timedelta(days=365)
RESET_LIFETIME = timedelta(hours=1)
FormBody = Body(media_type=RequestEncodingType.URL_ENCODED)


class AccountsController(Controller):
    include_in_schema = False  # pages and forms, not the JSON API

    @get("/")
    async def index(self, request: Request[Any, Any, Any], state: State) -> Template | Redirect:
        caller = await require_caller(request)
        async with state.pool.connection() as conn:
            shops = await accounts.shops_of(conn, caller.user_id)
        if len(shops) == 1:
            return Redirect(f"/shops/{shops[0]['domain']}")
        return Template("index.html", context={"shops": shops, "caller": caller})

    @get("/login")
    async def login_page(
        self,
        request: Request[Any, Any, Any],
        next: FromQuery[str | None] = None,
        reset: FromQuery[bool] = False,
        verified: FromQuery[bool] = False,
        invitation: FromQuery[str] = "",
    ) -> Response[Any]:
        notice = "Your password is changed; log in with it." if reset else None
        if verified:
            notice = "Your email address is confirmed; log in."
        if invitation:
            notice = "Log in to accept the invitation."
        return _form_page(
            request, "login.html", next=safe_next(next), notice=notice, invitation=invitation
        )

    @post("/login")
    async def login(
        self,
        request: Request[Any, Any, Any],
        state: State,
        data: Annotated[dict[str, str], FormBody],
    ) -> Response[Any]:
        _check_form_csrf(request, data)
        email = _typed_email(data)
        password = data.get("password", "")
        target = safe_next(data.get("next"))
        invitation = data.get("invitation", "")
        async with state.pool.connection() as conn:
            user = await accounts.user_by_email(conn, email)
            limited, ok = await password_check(conn, request, state, user, password, email)
            if ok and user is not None:
                # A reset committed meanwhile changed the password this one was checked against.
                await accounts.lock_account(conn, user["id"])
                ok = await accounts.password_hash_of(conn, user["id"]) == user["password_hash"]
            if ok and user is not None:
                if needs_rehash(user["password_hash"]):
                    user["password_hash"] = hash_password(password)
                    await accounts.set_password(conn, user["id"], user["password_hash"])
                old = request.cookies.get(SESSION_COOKIE)
                if old:
                    await accounts.close_session(conn, old)
                token = await accounts.open_session(conn, user["id"], SESSION_LIFETIME)
                target = await _accept(conn, invitation, user["id"]) or target
            await conn.commit()
        if limited:
            return _form_page(
                request,
                "login.html",
                status=429,
                error="Too many failed attempts. Wait 15 minutes, or reset your password.",
                email=email,
                next=target,
                invitation=invitation,
                headers={"Retry-After": str(int(LOGIN_WINDOW.total_seconds()))},
            )
        if not ok:
            return _form_page(
                request,
                "login.html",
                status=401,
                error="That email and password do not match an account.",
                email=email,
                next=target,
                invitation=invitation,
            )
        assert user is not None
        return _signed_in(Redirect(target, status_code=303), token, state, user)

    @get("/signup")
    async def signup_page(
        self, request: Request[Any, Any, Any], state: State, invitation: FromQuery[str] = ""
    ) -> Response[Any]:
        email = ""
        if invitation:
            async with state.pool.connection() as conn:
                found = await invitations.find(conn, invitation)
            email = found["email"] if found else ""
        return _form_page(request, "signup.html", email=email, invitation=invitation)

    @post("/signup")
    async def signup(
        self,
        request: Request[Any, Any, Any],
        state: State,
        data: Annotated[dict[str, str], FormBody],
    ) -> Response[Any]:
        _check_form_csrf(request, data)
        email = data.get("email", "").strip()
        password = data.get("password", "")
        invitation = data.get("invitation", "")
        problem = email_problem(email) or weakness(password, email)
        if problem is None and invitation:
            async with state.pool.connection() as conn:
                invited = await invitations.for_another(conn, invitation, email)
            if invited is not None:
                # Only an account of the invited address can accept it (invitations.accept).
                problem = (
                    f"This invitation is for {invited}: sign up with that address,"
                    " or ask the shop's owner to invite this one."
                )
        if problem is not None:
            return _form_page(
                request,
                "signup.html",
                status=400,
                error=problem,
                email=email,
                invitation=invitation,
            )
        # Hashed whether or not the account is made: the time taken does not tell either.
        password_hash = hash_password(password)
        token = existing = None
        async with state.pool.connection() as conn:
            if await verify_mail.may_mail(conn, email, client=_address(request)):
                try:
                    user_id = await accounts.create_user(conn, email, password_hash)
                except accounts.EmailTaken:
                    existing = await accounts.user_by_email(conn, email)
                else:
                    token = await verifications.create(conn, user_id)
            await conn.commit()
        # The same answer whether the account was made, existed already or the address had
        # its fill of mail: no session (that would tell), nothing about the account. The mail
        # goes after the answer, as the reset mail does: a slow mail server neither holds the
        # page past the request deadline nor times who has an account.
        answer = _form_page(request, "signup_sent.html", email=email, invitation=invitation)
        if token is not None:
            answer.background = BackgroundTask(
                verify_mail.send_link, state, email, token, invitation
            )
        elif existing is not None:
            answer.background = BackgroundTask(
                verify_mail.send_signup_attempt, state, existing["email"]
            )
        return answer

    @post("/logout")
    async def logout(self, request: Request[Any, Any, Any], state: State) -> Response[Any]:
        caller = await caller_of(request)
        if caller is not None:
            await require_caller(request)  # the session's CSRF token: no logout by a link
        token = request.cookies.get(SESSION_COOKIE)
        if token:
            async with state.pool.connection() as conn:
                await accounts.close_session(conn, token)
                await conn.commit()
        response: Response[Any] = Redirect("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    @get("/password/forgot")
    async def forgot_page(self, request: Request[Any, Any, Any]) -> Response[Any]:
        return _form_page(request, "forgot.html")

    @post("/password/forgot")
    async def forgot(
        self,
        request: Request[Any, Any, Any],
        state: State,
        data: Annotated[dict[str, str], FormBody],
    ) -> Response[Any]:
        _check_form_csrf(request, data)
        email = _typed_email(data)
        async with state.pool.connection() as conn:
            # Resets count like failed logins: asking for many is how one floods a mailbox.
            allowed = await accounts.count_if_allowed(
                conn,
                [
                    (f"reset:{email.lower()}", RESETS_PER_ACCOUNT),
                    (f"ip:{_address(request)}", FAILURES_PER_ADDRESS),
                ],
                LOGIN_WINDOW,
            )
            user = await accounts.user_by_email(conn, email) if allowed else None
            token = (
                await accounts.create_password_reset(conn, user["id"], RESET_LIFETIME)
                if user
                else None
            )
            await conn.commit()
        # The same answer whether or not the account exists, as fast: the mail goes after it
        # (waiting for the mail server made an account's answer 9 ms slower, which told).
        answer = _form_page(
            request,
            "forgot.html",
            notice="If an account uses that address, a link to choose a new password is on its"
            " way. It works once, within an hour.",
        )
        if user is not None and token is not None:
            link = f"{state.settings.stockpulse_base_url.rstrip('/')}/password/reset?token={token}"
            answer.background = BackgroundTask(
                state.mailer.send_password_reset, user["email"], link, RESET_LIFETIME
            )
        return answer

    @get("/password/reset")
    async def reset_page(
        self, request: Request[Any, Any, Any], state: State, token: FromQuery[str] = ""
    ) -> Response[Any]:
        async with state.pool.connection() as conn:
            valid = bool(token) and await accounts.reset_is_valid(conn, token)
        if not valid:
            return _form_page(
                request,
                "forgot.html",
                status=400,
                error="That link has expired or was used already. Ask for a new one.",
            )
        # The token is in the URL: no cache keeps the page.
        return _form_page(request, "reset.html", token=token, headers={"Cache-Control": "no-store"})

    @post("/password/reset")
    async def reset(
        self,
        request: Request[Any, Any, Any],
        state: State,
        data: Annotated[dict[str, str], FormBody],
    ) -> Response[Any]:
        _check_form_csrf(request, data)
        token = data.get("token", "")
        password = data.get("password", "")
        problem = weakness(password)
        if problem is not None:
            return _form_page(request, "reset.html", status=400, error=problem, token=token)
        async with state.pool.connection() as conn:
            user_id = await accounts.take_password_reset(conn, token)
            if user_id is not None:
                await accounts.lock_account(conn, user_id)
                await accounts.set_password(conn, user_id, hash_password(password))
                await accounts.forget_password_resets(conn, user_id)
                # The link came to the address: that proves it as a verification link would.
                await verifications.mark_verified(conn, user_id)
                # A reset locks out whoever knew the old password: its sessions end (above),
                # and so do the API tokens they could have made, perhaps as someone who signed
                # up with the address first.
                await accounts.revoke_all_api_tokens(conn, user_id)
            await conn.commit()
        if user_id is None:
            return _form_page(
                request,
                "forgot.html",
                status=400,
                error="That link has expired or was used already. Ask for a new one.",
            )
        return Redirect("/login?reset=true", status_code=303)


async def _accept(conn: Any, invitation: str, user_id: int) -> str | None:
    """With an invitation carried through sign-up or login, spend it for the account in the
    same transaction; where to go then: its shop, or, when it could not be accepted (used,
    expired, or another address's), its page, which says why. None without one."""
    if not invitation:
        return None
    taken = await invitations.accept(conn, invitation, user_id)
    return f"/shops/{taken['shop']}" if taken else f"/invitations/{quote(invitation, safe='')}"


def _form_page(
    request: Request[Any, Any, Any],
    template: str,
    *,
    status: int = 200,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> Response[Any]:
    """A form shown before a session exists, with its double-submit CSRF token."""
    token = request.cookies.get(FORM_CSRF_COOKIE) or accounts.new_secret()
    secure = secure_cookies(request.app.state.settings.stockpulse_base_url)
    return Template(
        template,
        context={"form_csrf": token, "caller": None, **context},
        status_code=status,
        headers=headers,
        cookies=[
            Cookie(
                key=FORM_CSRF_COOKIE,
                value=token,
                httponly=True,
                samesite="strict",
                secure=secure,
                path="/",
            )
        ],
    )


def _check_form_csrf(request: Request[Any, Any, Any], data: dict[str, str]) -> None:
    cookie = request.cookies.get(FORM_CSRF_COOKIE, "")
    sent = data.get("csrf_token", "")
    if not cookie or not sent or not hmac.compare_digest(cookie, sent):
        raise PermissionDeniedException("missing or wrong CSRF token; reload the page")


def _signed_in(
    response: Response[Any], token: str, state: State, user: dict[str, Any]
) -> Response[Any]:
    secure = secure_cookies(state.settings.stockpulse_base_url)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(SESSION_LIFETIME.total_seconds()),
        httponly=True,
        samesite="lax",
        secure=secure,
        path="/",
    )
    # Outlives the session and logout: it only says this browser knew the account's current
    # password within the last year.
    response.set_cookie(
        KNOWN_BROWSER_COOKIE,
        links.sign(
            state.settings.stockpulse_secret_key,
            links.KNOWN_BROWSER,
            [str(user["id"]), _password_tag(user["password_hash"]), str(int(time.time()))],
        ),
        max_age=int(KNOWN_BROWSER_LIFETIME.total_seconds()),
        httponly=True,
        samesite="strict",
        secure=secure,
        path="/login",
    )
    return response


def _known_browser(request: Request[Any, Any, Any], state: State, user: dict[str, Any]) -> bool:
    """Whether this browser signed in to ``user`` within the year, with its current password
    (a reset ends every browser's exemption, as it ends every session)."""
    cookie = request.cookies.get(KNOWN_BROWSER_COOKIE)
    signed = (
        links.verify(state.settings.stockpulse_secret_key, links.KNOWN_BROWSER, cookie)
        if cookie
        else None
    )
    if signed is None or len(signed) != 3 or not signed[2].isdigit():
        return False
    user_id, tag, issued = signed
    return (
        user_id == str(user["id"])
        and hmac.compare_digest(tag, _password_tag(user["password_hash"]))
        and time.time() - int(issued) < KNOWN_BROWSER_LIFETIME.total_seconds()
    )


def _password_tag(password_hash: str) -> str:
    return hashlib.sha256(password_hash.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class LoginKeys:
    """What failed logins are counted by: the account (by its id when it exists, so that no
    spelling of its address counts apart) and the client's address."""

    email: str
    address: str
    user_id: int | None

    @property
    def account(self) -> str:
        return f"user:{self.user_id}" if self.user_id is not None else f"email:{self.email.lower()}"

    @property
    def account_and_address(self) -> str:
        return f"{self.account} ip:{self.address}"

    @property
    def by_address(self) -> str:
        return f"ip:{self.address}"

    def all(self) -> list[str]:
        return [self.account_and_address, self.by_address, self.account]


async def password_check(
    conn: Any,
    request: Request[Any, Any, Any],
    state: State,
    user: dict[str, Any] | None,
    password: str,
    email: str = "",
) -> tuple[bool, bool]:
    """(rate limited, password right) for an attempt on ``user`` (None: no account has
    ``email``), counted as a login attempt is: the failure limits apply to every form that
    takes an account's password."""
    keys = LoginKeys(
        user["email"] if user else email, _address(request), user["id"] if user else None
    )
    await accounts.take_turn(conn, [keys.account, keys.by_address])
    known = user is not None and _known_browser(request, state, user)
    limited = await _limited(conn, keys, known)
    # Checked even without an account: the time taken does not tell who has one.
    ok = not limited and verify_password(user["password_hash"] if user else None, password)
    if limited:
        log.warning("login rate limit reached for %s", " / ".join(keys.all()))
    elif not ok:
        await accounts.record_login_failure(conn, keys.all())
    else:
        await accounts.clear_login_failures(conn, keys.account_and_address)
    return limited, ok and user is not None


async def _limited(conn: Any, keys: LoginKeys, known_browser: bool) -> bool:
    limits = [
        (keys.account_and_address, FAILURES_PER_ACCOUNT_AND_ADDRESS),
        (keys.by_address, FAILURES_PER_ADDRESS),
    ]
    if not known_browser:
        limits.append((keys.account, FAILURES_PER_ACCOUNT))
    return await _over(conn, limits)


async def _over(conn: Any, limits: list[tuple[str, int]]) -> bool:
    """Whether any key has failed its allowed number of times in the window."""
    for key, allowed in limits:
        if await accounts.recent_login_failures(conn, key, LOGIN_WINDOW) >= allowed:
            return True
    return False


MAX_EMAIL_LENGTH = 254  # RFC 5321's limit for a path, so for any address an account can have


def _typed_email(data: dict[str, str]) -> str:
    """The email typed into a form, cut past any length an account can have: it also names
    rate limits, and an index row of a megabyte fails (a 500, before)."""
    return data.get("email", "").strip()[: MAX_EMAIL_LENGTH + 1]


def _address(request: Request[Any, Any, Any]) -> str:
    return request.client.host if request.client else "unknown"


def unprintable(text: str) -> bool:
    """Whether ``text`` holds a control, format or line-separator character: a NUL no column
    holds, a line break that would split a mail header, a right-to-left override that makes
    an address read as another."""
    return any(unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp") for char in text)


def email_problem(email: str) -> str | None:
    """Why ``email`` cannot be an account's address; the same rules as alert recipients
    (``mailbox``), so an account's address is never one no mail can reach."""
    if len(email) > MAX_EMAIL_LENGTH or unprintable(email):
        return "Enter a valid email address."
    if not email.isascii():
        # Lookalikes: the Kelvin sign lowercases to k, so \u212aate@ claimed kate@'s account
        # (an outside tester), and mail went to the lookalike.
        return "Enter the address in plain letters (an international domain in its xn-- form)."
    try:
        mailbox("email", email)
    except ValueError:
        return "Enter a valid email address."
    return None
