"""The Mailbox page of ``stockpulse up``: mail the embedded SMTP catcher kept, when no
``SMTP_URL`` was configured (``STOCKPULSE_MAIL_CATCHER_DIR``).

A signed-in user sees only mail meant for them: addressed to their own email, or an alert
email of a shop they are a member of (its ``X-Stockpulse-Shop`` header). Password reset links
of other accounts are never shown.
"""

from __future__ import annotations

import email
import email.policy
import re
from email.message import EmailMessage
from email.utils import getaddresses, parsedate_to_datetime
from pathlib import Path
from typing import Any

from litestar import Controller, Request, get
from litestar.datastructures import State
from litestar.exceptions import NotFoundException
from litestar.params import FromPath
from litestar.response import Template

from connectors.db.accounts import Caller, shops_of
from web.auth import require_caller

SHOWN = 50
_NAME = re.compile(r"^\d{20}-\d{6}\.eml$")


def _read(path: Path) -> EmailMessage | None:
    try:
        parsed = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    except OSError:
        return None  # pruned meanwhile
    assert isinstance(parsed, EmailMessage)
    return parsed


def _visible(message: EmailMessage, caller: Caller, shops: set[str]) -> bool:
    to = {address.lower() for _, address in getaddresses([str(message["To"] or "")])}
    if caller.email.lower() in to:
        return True
    return str(message["X-Stockpulse-Shop"] or "") in shops


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


class MailboxController(Controller):
    async def _visible_mail(
        self, request: Request[Any, Any, Any], state: State
    ) -> tuple[Caller, Path, set[str]]:
        caller = await require_caller(request)
        directory = state.settings.stockpulse_mail_catcher_dir
        if not directory:
            raise NotFoundException("mail goes to SMTP_URL; there is no local mailbox")
        async with state.pool.connection() as conn:
            shops = {s["domain"] for s in await shops_of(conn, caller.user_id)}
            await conn.commit()
        return caller, Path(directory), shops

    @get("/mailbox", include_in_schema=False)
    async def mailbox(self, request: Request[Any, Any, Any], state: State) -> Template:
        caller, directory, shops = await self._visible_mail(request, state)
        shown = []
        for path in sorted(directory.glob("*.eml"), reverse=True):
            message = _read(path)
            if message is not None and _visible(message, caller, shops):
                shown.append(_summary(path.name, message))
                if len(shown) == SHOWN:
                    break
        return Template("mailbox.html", context={"messages": shown, "message": None})

    @get("/mailbox/{name:str}", include_in_schema=False)
    async def message(
        self, request: Request[Any, Any, Any], state: State, name: FromPath[str]
    ) -> Template:
        caller, directory, shops = await self._visible_mail(request, state)
        message = _read(directory / name) if _NAME.fullmatch(name) else None
        if message is None or not _visible(message, caller, shops):
            raise NotFoundException("no such message")
        body = message.get_body(preferencelist=("plain",))
        text = body.get_content() if body is not None else ""
        return Template(
            "mailbox.html",
            context={"messages": [], "message": {**_summary(name, message), "text": text}},
        )
