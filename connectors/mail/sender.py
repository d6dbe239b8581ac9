"""Hands messages to an SMTP server: the one way Stockpulse sends mail.

The stdlib ``smtplib`` does the talking, in a worker thread (``asyncio.to_thread``) because
no async SMTP client is a dependency. Each ``send`` opens its own connection, so a sender is
safe to share between tasks; a process that sends a handful of password resets and alerts
an hour gains nothing from keeping one open, and loses nothing when the server drops it.
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import make_msgid
from types import MappingProxyType

from connectors.mail.endpoint import SmtpEndpoint, TlsMode, parse_smtp_url
from connectors.mail.errors import (
    PermanentMailError,
    SmtpReply,
    TemporaryMailError,
    error_for_reply,
)
from connectors.mail.message import (
    SMTP_POLICY,
    SMTPUTF8_POLICY,
    OutgoingMail,
    check_address,
    from_header,
    needs_smtputf8,
    refuse_unsafe_header_text,
    render,
)

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_SECONDS = 15.0

_REFUSALS: dict[type[smtplib.SMTPResponseException], str] = {
    smtplib.SMTPConnectError: "did not accept the connection",
    smtplib.SMTPHeloError: "refused the greeting",
    smtplib.SMTPAuthenticationError: "refused the login",
}


@dataclass(frozen=True)
class Delivery:
    """What the server said to a message it took: who will get it, who will not, and why."""

    message_id: str
    accepted: tuple[str, ...]
    refused: Mapping[str, SmtpReply]
    reply: SmtpReply


class SmtpSender:
    """Sends ``OutgoingMail`` through the SMTP server of an ``SMTP_URL``.

    ``from_address`` (and ``from_name``) make the From header and the envelope sender;
    its domain ends the Message-IDs the sender generates. ``ssl_context`` replaces the
    system's trust store (a test's self-signed certificate, a private CA); ``timeout``
    bounds each network step in seconds; ``local_hostname`` is the name given in EHLO
    (default: this machine's fully qualified name).
    """

    def __init__(
        self,
        smtp_url: str,
        from_address: str,
        *,
        from_name: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        local_hostname: str | None = None,
    ) -> None:
        check_address("from_address", from_address)
        if from_name is not None:
            refuse_unsafe_header_text("from_name", from_name)
        if timeout <= 0:
            raise ValueError("timeout must be a positive number of seconds")
        self.endpoint: SmtpEndpoint = parse_smtp_url(smtp_url)
        self.from_address = from_address
        self._from_header = from_header(from_address, from_name)
        self._message_id_domain = from_address.rsplit("@", 1)[1]
        self._ssl_context = ssl_context or ssl.create_default_context()
        self._timeout = timeout
        self._local_hostname = local_hostname

    def __repr__(self) -> str:
        return f"SmtpSender({self.endpoint}, from_address={self.from_address!r})"

    async def send(self, mail: OutgoingMail) -> Delivery:
        """Hand ``mail`` to the server; a Delivery once it took the message for at least one
        recipient, else a TemporaryMailError (worth retrying) or PermanentMailError.

        Cancelling the call does not stop a delivery already under way in its thread; send
        the same ``message_id`` again to let receivers recognise a duplicate.
        """
        message_id = mail.message_id or make_msgid(domain=self._message_id_domain)
        message = render(mail, self._from_header, message_id)
        international = needs_smtputf8(mail.to)
        raw = message.as_bytes(policy=SMTPUTF8_POLICY if international else SMTP_POLICY)
        return await asyncio.to_thread(
            self._deliver, message_id, tuple(mail.to), raw, international
        )

    def _deliver(
        self, message_id: str, recipients: tuple[str, ...], raw: bytes, international: bool
    ) -> Delivery:
        smtp: smtplib.SMTP | None = None
        delivered = False
        try:
            smtp = self._connect()
            self._open_session(smtp)
            delivery = self._transact(smtp, message_id, recipients, raw, international)
            delivered = True
        except smtplib.SMTPResponseException as error:
            reply = _reply(error.smtp_code, error.smtp_error)
            what_failed = _REFUSALS.get(type(error), "refused the message")
            raise error_for_reply(f"{self.endpoint} {what_failed}", reply) from error
        except smtplib.SMTPServerDisconnected as error:
            # smtplib reports a timeout while waiting for a reply this way too.
            raise TemporaryMailError(f"lost the connection to {self.endpoint}: {error}") from error
        except smtplib.SMTPException as error:
            # What is left (no usable AUTH mechanism, a missing extension) is configuration.
            raise PermanentMailError(f"{self.endpoint}: {error}") from error
        except ssl.SSLCertVerificationError as error:
            raise PermanentMailError(
                f"{self.endpoint} presented a certificate that is not trusted"
                f" ({error.verify_message}); give SmtpSender an ssl_context that trusts it"
            ) from error
        except OSError as error:
            # Refused connections, unknown hosts, timeouts and broken TLS sessions: all can
            # heal, and a bounded retry costs less than a lost password reset or alert.
            # (smtplib's own exceptions are OSErrors too, hence this order.)
            raise TemporaryMailError(
                f"{self.endpoint} is unreachable or stopped answering:"
                f" {error or type(error).__name__}"
            ) from error
        finally:
            if smtp is not None and delivered:
                _quit_quietly(smtp)
            elif smtp is not None:
                smtp.close()
        log.info(
            "mail %s accepted by %s for %d of %d recipient(s)",
            message_id,
            self.endpoint,
            len(delivery.accepted),
            len(recipients),
        )
        for address, refusal in delivery.refused.items():
            log.warning(
                "mail %s: %s refused recipient %s: %s", message_id, self.endpoint, address, refusal
            )
        return delivery

    def _connect(self) -> smtplib.SMTP:
        """A connection that has heard the server's 220 greeting.

        The host goes to the constructor, not to ``connect``: smtplib only remembers it
        from there, and it is the name the TLS certificate is checked against.
        """
        endpoint = self.endpoint
        if endpoint.tls is TlsMode.IMPLICIT:
            return smtplib.SMTP_SSL(
                endpoint.host,
                endpoint.port,
                local_hostname=self._local_hostname,
                timeout=self._timeout,
                context=self._ssl_context,
            )
        return smtplib.SMTP(
            endpoint.host,
            endpoint.port,
            local_hostname=self._local_hostname,
            timeout=self._timeout,
        )

    def _open_session(self, smtp: smtplib.SMTP) -> None:
        """Greet, secure the connection as configured, log in."""
        endpoint = self.endpoint
        smtp.ehlo_or_helo_if_needed()
        encrypted = endpoint.tls is TlsMode.IMPLICIT
        if endpoint.tls in (TlsMode.STARTTLS_REQUIRED, TlsMode.STARTTLS_IF_OFFERED):
            if smtp.has_extn("starttls"):
                smtp.starttls(context=self._ssl_context)
                # RFC 3207 §4.2: what the server said before TLS no longer counts; ask again.
                smtp.ehlo_or_helo_if_needed()
                encrypted = True
            elif endpoint.tls is TlsMode.STARTTLS_REQUIRED:
                raise PermanentMailError(
                    f"{endpoint} does not offer STARTTLS, which SMTP_URL requires"
                )
        if endpoint.username is None:
            return
        if not smtp.has_extn("auth"):
            raise PermanentMailError(
                f"{endpoint} offers no AUTH{'' if encrypted else ' without TLS'};"
                " SMTP_URL has credentials it cannot use"
            )
        if not encrypted and not endpoint.is_loopback:
            log.warning("logging in to %s over an unencrypted connection", endpoint)
        smtp.login(endpoint.username, endpoint.password or "")

    def _transact(
        self,
        smtp: smtplib.SMTP,
        message_id: str,
        recipients: tuple[str, ...],
        raw: bytes,
        international: bool,
    ) -> Delivery:
        """MAIL, one RCPT per recipient, DATA: done by hand rather than with
        ``sendmail``, which keeps the final reply to itself."""
        options: list[str] = []
        if international:
            if not smtp.has_extn("smtputf8"):
                raise PermanentMailError(
                    f"{self.endpoint} does not support SMTPUTF8, needed for non-ASCII addresses"
                )
            options.append("SMTPUTF8")
        code, text = smtp.mail(self.from_address, options)
        if code != 250:
            raise error_for_reply(
                f"{self.endpoint} refused the sender {self.from_address}", _reply(code, text)
            )
        accepted: list[str] = []
        refused: dict[str, SmtpReply] = {}
        for address in recipients:
            code, text = smtp.rcpt(address)
            if code in (250, 251):
                accepted.append(address)
            elif code == 421:
                raise error_for_reply(f"{self.endpoint} is closing", _reply(code, text))
            else:
                refused[address] = _reply(code, text)
        if not accepted:
            # Temporary when any refusal was: retrying may reach that recipient.
            temporary = [reply for reply in refused.values() if reply.is_temporary]
            reply = temporary[0] if temporary else next(iter(refused.values()))
            raise error_for_reply(f"{self.endpoint} refused every recipient", reply, refused)
        code, text = smtp.data(raw)
        if code != 250:
            raise error_for_reply(f"{self.endpoint} refused the message", _reply(code, text))
        return Delivery(
            message_id=message_id,
            accepted=tuple(accepted),
            refused=MappingProxyType(refused),
            reply=_reply(code, text),
        )


def _reply(code: int, text: bytes | str) -> SmtpReply:
    return SmtpReply(code, text.decode("utf-8", "replace") if isinstance(text, bytes) else text)


def _quit_quietly(smtp: smtplib.SMTP) -> None:
    """Say goodbye after a delivery; the message is already the server's, so a failed QUIT
    must not turn a success into an error that a caller would retry into a duplicate."""
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        smtp.close()
