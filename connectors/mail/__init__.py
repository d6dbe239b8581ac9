"""Outgoing mail over SMTP, for password resets and alerts.

>>> from connectors.mail import OutgoingMail, SmtpSender
>>> sender = SmtpSender("smtp://127.0.0.1:1025?starttls=off", "alerts@shop.example")
>>> mail = OutgoingMail(to=["owner@shop.example"], subject="Blue tee: 3 days left", text="…")

``await sender.send(mail)`` then returns a ``Delivery``, or raises a ``MailError``: a
``TemporaryMailError`` is worth retrying (with the same ``message_id``), a
``PermanentMailError`` is not.
"""

from connectors.mail.endpoint import SmtpEndpoint, TlsMode, parse_smtp_url
from connectors.mail.errors import MailError, PermanentMailError, SmtpReply, TemporaryMailError
from connectors.mail.message import OutgoingMail, one_line
from connectors.mail.sender import Delivery, SmtpSender

__all__ = [
    "Delivery",
    "MailError",
    "OutgoingMail",
    "PermanentMailError",
    "SmtpEndpoint",
    "SmtpReply",
    "SmtpSender",
    "TemporaryMailError",
    "TlsMode",
    "one_line",
    "parse_smtp_url",
]
