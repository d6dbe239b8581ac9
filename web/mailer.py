"""The mail the web app sends (password resets, shop invitations), rendered from Jinja2
templates into a text and an HTML part and handed to the SMTP server of ``SMTP_URL``."""

from __future__ import annotations

import logging
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
        mail = OutgoingMail(
            to=[to],
            subject="Choose a new Stockpulse password",
            text=self._templates.get_template("password_reset.txt").render(context),
            html=self._templates.get_template("password_reset.html").render(context),
        )
        try:
            await self.sender.send(mail)
        except (MailError, ValueError) as exc:
            log.error("the password reset mail to %s was not sent: %s", to, exc)
            return False
        return True

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
        mail = OutgoingMail(
            to=[to],
            subject=f"You are invited to {shop} on Stockpulse",
            text=self._templates.get_template("invitation.txt").render(context),
            html=self._templates.get_template("invitation.html").render(context),
        )
        try:
            await self.sender.send(mail)
        except (MailError, ValueError) as exc:
            log.error("the invitation mail to %s was not sent: %s", to, exc)
            return False
        return True
