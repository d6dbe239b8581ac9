"""The Mailbox page of ``stockpulse up``: mail the embedded SMTP catcher kept, when no
``SMTP_URL`` was configured (``STOCKPULSE_MAIL_CATCHER_DIR``).

It is the machine's mail catcher, read by whoever runs the machine: the link ``up`` prints
carries a key (signed with ``STOCKPULSE_SECRET_KEY``) that a browser keeps as a cookie for
this page only. Accounts do not open it. They once did, each seeing mail sent to its own
address, but sign-up does not prove one owns an address, so an outside tester signed up as
the demo shop's alert recipient and read its alerts; a viewer read the owner's alerts with
their unsubscribe links; and a read-only API token read its account's password-reset mail.
"""

from __future__ import annotations

import email
import email.policy
import re
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

from litestar import Controller, Request, get
from litestar.datastructures import Cookie, State
from litestar.exceptions import NotFoundException
from litestar.params import FromPath
from litestar.response import Redirect, Template

from connectors import links
from connectors.settings import Settings
from web.auth import secure_cookies

SHOWN = 50
COOKIE = "sp_mailbox"
_NAME = re.compile(r"^\d{20}-\d{6}\.eml$")
_PRIVATE = {"Cache-Control": "no-store"}  # reset and invitation links: kept by no cache


def _read(path: Path) -> EmailMessage | None:
    try:
        parsed = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    except OSError:
        return None  # pruned meanwhile
    assert isinstance(parsed, EmailMessage)
    return parsed


def _summary(name: str, message: EmailMessage) -> dict[str, Any]:
    try:
        sent = parsedate_to_datetime(str(message["Date"])).strftime("%Y-%m-%d %H:%M:%S %Z")
    except (TypeError, ValueError):
        sent = ""
    return {
        "name": name,
        "subject": str(message["Subject"] or ""),
        "to": str(message["To"] or ""),
        "date": sent,
    }


def _directory(settings: Settings) -> Path:
    if not settings.stockpulse_mail_catcher_dir:
        raise NotFoundException("mail goes to SMTP_URL; there is no local mailbox")
    return Path(settings.stockpulse_mail_catcher_dir)


def _opens(settings: Settings, key: str | None) -> bool:
    if not key:
        return False
    return links.verify(settings.stockpulse_secret_key, links.MAILBOX, key) is not None


def _locked() -> Template:
    return Template(
        "mailbox.html",
        context={"messages": [], "message": None, "locked": True},
        status_code=403,
        headers=_PRIVATE,
    )


class MailboxController(Controller):
    @get("/mailbox", include_in_schema=False)
    async def mailbox(
        self, request: Request[Any, Any, Any], state: State, key: str | None = None
    ) -> Template | Redirect:
        settings: Settings = state.settings
        if key is not None:
            _directory(settings)
            if not _opens(settings, key):
                return _locked()
            # The key leaves the address bar (and the history) for a cookie of this page.
            redirect = Redirect("/mailbox", status_code=303, headers=_PRIVATE)
            redirect.cookies.append(
                Cookie(
                    key=COOKIE,
                    value=key,
                    path="/mailbox",
                    httponly=True,
                    samesite="lax",
                    secure=secure_cookies(settings.stockpulse_base_url),
                )
            )
            return redirect
        directory = _directory(settings)
        if not _opens(settings, request.cookies.get(COOKIE)):
            return _locked()
        shown = []
        for path in sorted(directory.glob("*.eml"), reverse=True):
            message = _read(path)
            if message is not None:
                shown.append(_summary(path.name, message))
                if len(shown) == SHOWN:
                    break
        return Template(
            "mailbox.html", context={"messages": shown, "message": None}, headers=_PRIVATE
        )

    @get("/mailbox/{name:str}", include_in_schema=False)
    async def message(
        self, request: Request[Any, Any, Any], state: State, name: FromPath[str]
    ) -> Template:
        directory = _directory(state.settings)
        if not _opens(state.settings, request.cookies.get(COOKIE)):
            return _locked()
        message = _read(directory / name) if _NAME.fullmatch(name) else None
        if message is None:
            raise NotFoundException("no such message")
        body = message.get_body(preferencelist=("plain",))
        text = body.get_content() if body is not None else ""
        return Template(
            "mailbox.html",
            context={"messages": [], "message": {**_summary(name, message), "text": text}},
            headers=_PRIVATE,
        )
