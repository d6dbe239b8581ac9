"""The mail sign-up sends: a single-use link that confirms the account's address or, when
the address has an account already, a note to its owner (the page answers the same either
way). Both count against the address, 5 in 15 minutes like password resets, so that nobody
floods a mailbox through sign-up or the "send the link again" button."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from litestar.datastructures import State

from connectors.db import accounts, verifications

MAILS_PER_ADDRESS = 5
# Sign-ups from one client: without it, one client could have us mail thousands of
# addresses, five each.
MAILS_PER_CLIENT = 20
WINDOW = timedelta(minutes=15)


def _key(email: str) -> str:
    return f"verify:{email.strip().lower()}"


async def may_mail(conn: Any, email: str, client: str | None = None) -> bool:
    """Whether ``email`` may get one more of these mails now, asked for by ``client`` (the
    caller's network address; None for a signed-in account's own address); counts it when so."""
    limits = [(_key(email), MAILS_PER_ADDRESS)]
    if client is not None:
        limits.append((f"signup-from:{client}", MAILS_PER_CLIENT))
    return await accounts.count_if_allowed(conn, limits, WINDOW)


async def send_link(state: State, email: str, token: str, invitation: str = "") -> bool:
    """Mail the link of ``token``; it carries ``invitation`` (a sign-up made through one) so
    that confirming leads back to it."""
    query = {"token": token, **({"invitation": invitation} if invitation else {})}
    link = f"{_base(state)}/email/verify?{urlencode(query)}"
    return bool(await state.mailer.send_verification(email, link, verifications.LIFETIME))


async def send_signup_attempt(state: State, email: str) -> bool:
    return bool(
        await state.mailer.send_signup_attempt(
            email, f"{_base(state)}/login", f"{_base(state)}/password/forgot"
        )
    )


def _base(state: State) -> str:
    return str(state.settings.stockpulse_base_url).rstrip("/")
