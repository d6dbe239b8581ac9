"""The mail the web app sends (password resets, shop invitations, address verification),
rendered from Jinja2
templates into a text and an HTML part and handed to the SMTP server of ``SMTP_URL``."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import timedelta
from email.utils import parseaddr
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape

from connectors.mail import MailError, OutgoingMail, SmtpSender
from connectors.settings import Settings

log = logging.getLogger(__name__)
TEMPLATES = Path(__file__).parent / "templates" / "mail"


class Mailer:
    def __init__(self, settings: Settings) -> None:
        name, address = parseaddr(settings.mail_from)
        self.sender = SmtpSender(settings.smtp_url, address, from_name=name or None)
        self._templates = Environment(
            loader=FileSystemLoader(TEMPLATES),
            autoescape=select_autoescape(enabled_extensions=("html",)),
        )

    async def send_password_reset(self, to: str, link: str, lifetime: timedelta) -> bool:
        """Whether the server took the message. A failure is logged, not shown: the page
        answers the same whether or not an account exists, and so whether or not mail went."""
        context = {"link": link, "minutes": int(lifetime.total_seconds() // 60)}
        return await self._send(to, "Choose a new Stockpulse password", "password_reset", context)

    async def send_invitation(
        self, to: str, link: str, *, shop: str, role: str, invited_by: str, lifetime: timedelta
    ) -> bool:
        """Whether the server took the message; a failure is logged and told to the owner,
        whose invitation stays (inviting again sends a new link)."""
        context = {
            "link": link,
            "shop": shop,
            "role": role,
            "invited_by": invited_by,
            "days": lifetime.days,
        }
        return await self._send(
            to, f"You are invited to {shop} on Stockpulse", "invitation", context
        )

    async def send_verification(self, to: str, link: str, lifetime: timedelta) -> bool:
        """Whether the server took the message. A failure is logged, not shown: sign-up
        answers the same whether or not an account exists, and so whether or not mail went;
        the signed-in account can ask for the link again."""
        context = {"link": link, "hours": int(lifetime.total_seconds() // 3600)}
        return await self._send(to, "Confirm your email address for Stockpulse", "verify", context)

    async def send_signup_attempt(self, to: str, login_link: str, reset_link: str) -> bool:
        """To an address that has an account already, when someone signs up with it: the
        page cannot say so (it would tell anyone who has an account), the owner can."""
        context = {"login_link": login_link, "reset_link": reset_link}
        subject = "Someone tried to sign up to Stockpulse with your address"
        return await self._send(to, subject, "signup_attempt", context)

    async def _send(
        self, to: str, subject: str, template: str, context: Mapping[str, object]
    ) -> bool:
        mail = OutgoingMail(
            to=[to],
            subject=subject,
            text=self._templates.get_template(f"{template}.txt").render(context),
            html=self._templates.get_template(f"{template}.html").render(context),
        )
        try:
            await self.sender.send(mail)
        except (MailError, ValueError) as exc:
            log.error("the %s mail to %s was not sent: %s", template, to, exc)
            return False
        return True
