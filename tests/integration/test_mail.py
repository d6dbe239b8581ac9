"""The SMTP sender against real SMTP servers (aiosmtpd) on loopback: plain, STARTTLS, smtps."""

from __future__ import annotations

import logging
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from connectors.mail import (
    OutgoingMail,
    PermanentMailError,
    SmtpSender,
    TemporaryMailError,
    TlsMode,
    parse_smtp_url,
)

pytestmark = [
    pytest.mark.timeout(30),
    # The smtps server below asks for it on purpose: its TLS is implicit, not STARTTLS.
    pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning"),
]

LOGIN = "postmaster@mg.example.com"
# Characters that must survive percent-encoding in SMTP_URL.
PASSWORD = "p@ss:w/rd%?#"
FROM = "alerts@stockpulse.example"
# Timeouts short enough that a hung test fails fast, long enough for a loaded CI machine.
TIMEOUT = 5.0


@dataclass
class ReceivedMail:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    encrypted: bool
    login: bytes | None

    @property
    def message(self) -> EmailMessage:
        # As a delivering server would store it: with the SMTP line endings undone.
        unix_lines = self.content.replace(b"\r\n", b"\n")
        parsed = BytesParser(policy=policy.default).parsebytes(unix_lines)
        assert isinstance(parsed, EmailMessage)
        return parsed


class RecordingHandler:
    """Keeps what arrives; refuses ``nobody@`` for good and ``busy@`` for now."""

    def __init__(self) -> None:
        self.received: list[ReceivedMail] = []

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        local_part = address.split("@")[0]
        if local_part == "nobody":
            return "550 5.1.1 No such mailbox"
        if local_part == "busy":
            return "450 4.2.1 Mailbox busy, try later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert server.transport is not None
        assert isinstance(envelope.content, bytes)
        credentials = session.auth_data
        self.received.append(
            ReceivedMail(
                mail_from=str(envelope.mail_from),
                rcpt_tos=list(envelope.rcpt_tos),
                content=envelope.content,
                encrypted=server.transport.get_extra_info("ssl_object") is not None,
                login=credentials.login if isinstance(credentials, LoginPassword) else None,
            )
        )
        return "250 2.0.0 Queued as test-1"


def authenticate(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
) -> AuthResult:
    valid = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login == LOGIN.encode()
        and auth_data.password == PASSWORD.encode()
    )
    # handled=False lets aiosmtpd answer a failure with its own 535.
    return AuthResult(success=valid, handled=False, auth_data=auth_data if valid else None)


@dataclass
class Server:
    port: int
    handler: RecordingHandler

    def url(self, scheme: str = "smtp", credentials: bool = True, query: str = "") -> str:
        userinfo = f"{quote(LOGIN, safe='')}:{quote(PASSWORD, safe='')}@" if credentials else ""
        return f"{scheme}://{userinfo}127.0.0.1:{self.port}{query}"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost: (certificate, key) PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "stockpulse test smtp")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(IPv4Address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    directory = tmp_path_factory.mktemp("smtp-tls")
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


@pytest.fixture(scope="module")
def server_tls(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    return context


@pytest.fixture(scope="module")
def trusting(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    """A client context that trusts the test certificate and nothing else."""
    return ssl.create_default_context(cafile=str(certificate[0]))


def run_server(**options: Any) -> Iterator[Server]:
    handler = RecordingHandler()
    port = free_port()
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=port,
        authenticator=authenticate,
        ready_timeout=TIMEOUT,
        **options,
    )
    controller.start()
    try:
        yield Server(port, handler)
    finally:
        controller.stop()


@pytest.fixture(scope="module")
def plain_server() -> Iterator[Server]:
    """No TLS; AUTH offered in plain text (loopback only) but not required; SMTPUTF8."""
    yield from run_server(auth_require_tls=False, enable_SMTPUTF8=True)


@pytest.fixture(scope="module")
def starttls_server(server_tls: ssl.SSLContext) -> Iterator[Server]:
    """Insists on STARTTLS, then on AUTH (which it only offers once encrypted)."""
    yield from run_server(tls_context=server_tls, require_starttls=True, auth_required=True)


@pytest.fixture(scope="module")
def smtps_server(server_tls: ssl.SSLContext) -> Iterator[Server]:
    """TLS from the first byte; aiosmtpd only counts STARTTLS as TLS for AUTH, hence False."""
    yield from run_server(ssl_context=server_tls, auth_require_tls=False, auth_required=True)


@pytest.fixture(autouse=True)
def _forget_received(request: pytest.FixtureRequest) -> None:
    for name in ("plain_server", "starttls_server", "smtps_server"):
        if name in request.fixturenames:
            request.getfixturevalue(name).handler.received.clear()


def sender_for(url: str, **options: Any) -> SmtpSender:
    return SmtpSender(url, FROM, timeout=TIMEOUT, local_hostname="localhost", **options)


def simple_mail(*to: str, **fields: Any) -> OutgoingMail:
    return OutgoingMail(
        to=list(to or ["owner@shop.example"]), subject="Stock alert", text="Blue tee low", **fields
    )


# --- SMTP_URL ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "host", "port", "tls", "username", "password"),
    [
        ("smtp://user:pass@mail.example.com:587", "mail.example.com", 587, "auto", "user", "pass"),
        (
            "smtp://postmaster%40mg.example.com:p%40ss%3Aw@smtp.mailgun.org:587?starttls=require",
            "smtp.mailgun.org",
            587,
            "require",
            "postmaster@mg.example.com",
            "p@ss:w",
        ),
        (
            "smtps://user:pass@mail.example.com:465",
            "mail.example.com",
            465,
            "implicit",
            "user",
            "pass",
        ),
        ("smtps://user:pass@mail.example.com", "mail.example.com", 465, "implicit", "user", "pass"),
        ("smtp://relay.internal:25?starttls=off", "relay.internal", 25, "off", None, None),
        ("SMTP://relay.internal", "relay.internal", 25, "auto", None, None),
        ("smtp://[::1]:1025", "::1", 1025, "auto", None, None),
    ],
)
def test_smtp_url_forms(
    url: str, host: str, port: int, tls: str, username: str | None, password: str | None
) -> None:
    endpoint = parse_smtp_url(url)
    assert (endpoint.host, endpoint.port, endpoint.tls, endpoint.username, endpoint.password) == (
        host,
        port,
        TlsMode(tls),
        username,
        password,
    )
    if password is None:
        assert parse_smtp_url(str(endpoint)) == endpoint
    else:
        assert password not in str(endpoint) and password not in repr(endpoint)


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("http://user:hunter2@mail.example.com", "smtp:// or smtps://"),
        ("smtp://user:hunter2@:25", "no host"),
        ("smtp://user:hunter2@mail.example.com:port", "not a valid URL"),
        ("smtp://user:hunter2@mail.example.com?starttls=required", "starttls must be one of"),
        ("smtp://user:hunter2@mail.example.com?tls=1", "unknown option"),
        ("smtps://user:hunter2@mail.example.com?starttls=require", "does not apply to smtps"),
        ("smtp://user@mail.example.com", "no password"),
        ("smtp://:hunter2@mail.example.com", "no user name"),
        ("smtp://user:hunter2@mail.example.com/inbox", "no path"),
    ],
)
def test_bad_smtp_urls_are_refused_without_echoing_the_password(url: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint) as refused:
        parse_smtp_url(url)
    assert "hunter2" not in str(refused.value)


# --- delivery ---------------------------------------------------------------------------


async def test_plain_smtp_with_login(plain_server: Server) -> None:
    delivery = await sender_for(plain_server.url()).send(simple_mail("owner@shop.example"))

    assert delivery.accepted == ("owner@shop.example",)
    assert delivery.refused == {}
    assert delivery.reply.code == 250 and "Queued as test-1" in delivery.reply.text
    [received] = plain_server.handler.received
    assert received.login == LOGIN.encode()
    assert not received.encrypted
    assert received.mail_from == FROM
    assert received.message["From"] == FROM
    assert received.message["Message-ID"] == delivery.message_id


async def test_starttls_off_without_credentials(plain_server: Server) -> None:
    url = plain_server.url(credentials=False, query="?starttls=off")
    await sender_for(url).send(simple_mail())
    [received] = plain_server.handler.received
    assert received.login is None


async def test_text_and_html_arrive_intact_with_given_message_id_and_headers(
    plain_server: Server,
) -> None:
    unsubscribe = (
        "<https://stockpulse.example/unsubscribe/" + "t0k3n" * 30 + ">, "
        "<mailto:unsubscribe@stockpulse.example?subject=alerts>"
    )
    text = "Réassort conseillé : 12 unités.\n.a line starting with a dot\n" + "x" * 300 + "\n"
    html = "<p>Réassort <b>conseillé</b> : 12 unités.</p>\n"
    mail = OutgoingMail(
        to=["owner@shop.example"],
        subject="Bleu – 3 jours de stock " * 4,
        text=text,
        html=html,
        headers={
            "List-Unsubscribe": unsubscribe,
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
        message_id="<alert-42.demo.myshopify.com@stockpulse.example>",
    )

    delivery = await sender_for(plain_server.url()).send(mail)

    assert delivery.message_id == "<alert-42.demo.myshopify.com@stockpulse.example>"
    [received] = plain_server.handler.received
    # 7-bit on the wire: no server is asked for 8BITMIME.
    assert received.content.isascii()
    message = received.message
    assert message["Message-ID"] == "<alert-42.demo.myshopify.com@stockpulse.example>"
    assert message["Subject"] == "Bleu – 3 jours de stock " * 4
    assert message["List-Unsubscribe"] == unsubscribe
    assert "=?" not in received.content.decode().split("List-Unsubscribe:")[1].split("\r\n")[0]
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["Date"] is not None
    assert message.get_content_type() == "multipart/alternative"
    plain_part = message.get_body(preferencelist=("plain",))
    html_part = message.get_body(preferencelist=("html",))
    assert isinstance(plain_part, EmailMessage) and isinstance(html_part, EmailMessage)
    assert plain_part.get_content() == text
    assert html_part.get_content() == html


async def test_a_generated_message_id_uses_the_sender_domain(plain_server: Server) -> None:
    first = await sender_for(plain_server.url()).send(simple_mail())
    second = await sender_for(plain_server.url()).send(simple_mail())

    assert first.message_id.endswith("@stockpulse.example>")
    assert first.message_id != second.message_id
    assert [r.message["Message-ID"] for r in plain_server.handler.received] == [
        first.message_id,
        second.message_id,
    ]


async def test_several_recipients_and_a_refused_one(plain_server: Server) -> None:
    mail = simple_mail("owner@shop.example", "nobody@shop.example", "buyer@shop.example")

    delivery = await sender_for(plain_server.url()).send(mail)

    assert delivery.accepted == ("owner@shop.example", "buyer@shop.example")
    assert list(delivery.refused) == ["nobody@shop.example"]
    refusal = delivery.refused["nobody@shop.example"]
    assert refusal.code == 550 and not refusal.is_temporary
    [received] = plain_server.handler.received
    assert received.rcpt_tos == ["owner@shop.example", "buyer@shop.example"]
    assert received.message["To"] == "owner@shop.example, nobody@shop.example, buyer@shop.example"


async def test_every_recipient_refused_is_permanent_or_temporary_by_code(
    plain_server: Server,
) -> None:
    sender = sender_for(plain_server.url())
    with pytest.raises(PermanentMailError, match="refused every recipient") as permanent:
        await sender.send(simple_mail("nobody@shop.example"))
    assert not permanent.value.retryable
    assert permanent.value.refused["nobody@shop.example"].code == 550

    with pytest.raises(TemporaryMailError) as temporary:
        await sender.send(simple_mail("nobody@shop.example", "busy@shop.example"))
    assert temporary.value.retryable
    assert temporary.value.reply is not None and temporary.value.reply.code == 450
    assert set(temporary.value.refused) == {"nobody@shop.example", "busy@shop.example"}
    assert plain_server.handler.received == []


async def test_non_ascii_recipient_goes_out_with_smtputf8(plain_server: Server) -> None:
    delivery = await sender_for(plain_server.url()).send(simple_mail("jürgen@läden.example"))

    assert delivery.accepted == ("jürgen@läden.example",)
    [received] = plain_server.handler.received
    assert received.rcpt_tos == ["jürgen@läden.example"]
    assert received.message["To"] == "jürgen@läden.example"


async def test_wrong_password_is_permanent(plain_server: Server) -> None:
    url = plain_server.url().replace(quote(PASSWORD, safe=""), "wrong")
    with pytest.raises(PermanentMailError) as refused:
        await sender_for(url).send(simple_mail())
    assert refused.value.reply is not None and refused.value.reply.code == 535


async def test_no_password_in_logs_or_errors(
    plain_server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    sender = sender_for(plain_server.url())
    await sender.send(simple_mail("owner@shop.example", "nobody@shop.example"))
    with pytest.raises(PermanentMailError) as refused:
        await sender.send(simple_mail("nobody@shop.example"))

    encoded = quote(PASSWORD, safe="")
    for text in (caplog.text, str(refused.value), repr(sender), str(sender.endpoint)):
        assert PASSWORD not in text and encoded not in text
    assert "accepted by smtp://postmaster%40mg.example.com@127.0.0.1" in caplog.text


# --- TLS --------------------------------------------------------------------------------


@pytest.mark.parametrize("query", ["", "?starttls=require"])
async def test_starttls_with_a_self_signed_certificate(
    starttls_server: Server, trusting: ssl.SSLContext, query: str
) -> None:
    sender = sender_for(starttls_server.url(query=query), ssl_context=trusting)
    delivery = await sender.send(simple_mail())

    assert delivery.accepted == ("owner@shop.example",)
    [received] = starttls_server.handler.received
    assert received.encrypted
    assert received.login == LOGIN.encode()


async def test_an_untrusted_certificate_is_permanent(starttls_server: Server) -> None:
    with pytest.raises(PermanentMailError, match="not trusted"):
        await sender_for(starttls_server.url()).send(simple_mail())
    assert starttls_server.handler.received == []


async def test_starttls_off_stays_in_plain_text(
    starttls_server: Server, trusting: ssl.SSLContext
) -> None:
    # This server insists on STARTTLS, so staying plain must end in its refusal.
    url = starttls_server.url(credentials=False, query="?starttls=off")
    with pytest.raises(PermanentMailError, match="530"):
        await sender_for(url, ssl_context=trusting).send(simple_mail())


async def test_required_starttls_missing_is_permanent(plain_server: Server) -> None:
    url = plain_server.url(query="?starttls=require")
    with pytest.raises(PermanentMailError, match="does not offer STARTTLS"):
        await sender_for(url).send(simple_mail())
    assert plain_server.handler.received == []


async def test_implicit_tls(smtps_server: Server, trusting: ssl.SSLContext) -> None:
    sender = sender_for(smtps_server.url(scheme="smtps"), ssl_context=trusting)
    delivery = await sender.send(simple_mail("owner@shop.example", "buyer@shop.example"))

    assert delivery.accepted == ("owner@shop.example", "buyer@shop.example")
    [received] = smtps_server.handler.received
    assert received.encrypted
    assert received.login == LOGIN.encode()


# --- an absent or silent server ---------------------------------------------------------


async def test_an_unreachable_server_is_temporary() -> None:
    with pytest.raises(TemporaryMailError, match="unreachable") as unreachable:
        await sender_for(f"smtp://127.0.0.1:{free_port()}").send(simple_mail())
    assert unreachable.value.retryable


async def test_a_silent_server_times_out_as_temporary() -> None:
    # The kernel completes the TCP handshake for a listening socket; nobody ever greets.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        sender = SmtpSender(f"smtp://127.0.0.1:{port}", FROM, timeout=0.3)
        with pytest.raises(TemporaryMailError, match="timed out"):
            await sender.send(simple_mail())


# --- header injection and addresses -----------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "complaint"),
    [
        ({"subject": "Hi\r\nBcc: victim@example.com"}, "subject must not contain a line break"),
        ({"subject": "Hi\nthere"}, "line break"),
        ({"subject": "Hi\u2028Bcc: victim@example.com"}, "control character"),
        ({"subject": "Hi\x85there"}, "control character"),
        ({"to": ["owner@shop.example\r\nBcc: victim@example.com"]}, "line break"),
        ({"to": ["owner@shop.example, victim@example.com"]}, "contains a space"),
        ({"to": ["owner@shop.example,victim@example.com"]}, "exactly one @"),
        ({"to": ["victim@example.com>"]}, "contains '>'"),
        ({"to": ["owner shop.example"]}, "contains a space"),
        ({"to": ["owner.shop.example"]}, "exactly one @"),
        ({"to": ["@shop.example"]}, "a side of @ is empty"),
        ({"to": []}, "at least one recipient"),
        ({"headers": {"List-Unsubscribe": "<https://x>\r\nBcc: victim@example.com"}}, "line"),
        ({"headers": {"X-Bad\r\nBcc": "victim@example.com"}}, "header name"),
        ({"headers": {"X Bad": "1"}}, "header name"),
        ({"headers": {"bcc": "victim@example.com"}}, "set by the sender"),
        ({"headers": {"Message-ID": "<a@b>"}}, "set by the sender"),
        ({"message_id": "<a@b>\r\nBcc: victim@example.com"}, "line break"),
        ({"message_id": "alert-42@stockpulse.example"}, "must look like <unique-part@domain>"),
    ],
)
def test_header_injection_and_bad_addresses_are_refused(
    fields: dict[str, Any], complaint: str
) -> None:
    message = {"to": ["owner@shop.example"], "subject": "Stock alert", "text": "body", **fields}
    with pytest.raises(ValueError, match=complaint):
        OutgoingMail(**message)


def test_a_string_is_not_a_recipient_list() -> None:
    with pytest.raises(TypeError, match="list of addresses"):
        OutgoingMail(to="owner@shop.example", subject="s", text="t")


@pytest.mark.parametrize(
    ("from_address", "from_name", "complaint"),
    [
        ("alerts@stockpulse.example\r\nBcc: x@y.z", None, "line break"),
        ("alerts at stockpulse.example", None, "contains a space"),
        ("alerts@stöckpulse.example", None, "must be ASCII"),
        ("alerts@stockpulse.example", "Stockpulse\r\nBcc: x@y.z", "from_name must not"),
    ],
)
def test_a_bad_from_address_is_refused(
    from_address: str, from_name: str | None, complaint: str
) -> None:
    with pytest.raises(ValueError, match=complaint):
        SmtpSender("smtp://127.0.0.1:25", from_address, from_name=from_name)


async def test_from_name_is_quoted_into_the_from_header(plain_server: Server) -> None:
    sender = SmtpSender(
        plain_server.url(), FROM, from_name="Zoë, Stockpulse", local_hostname="localhost"
    )
    await sender.send(simple_mail())
    [received] = plain_server.handler.received
    [sender_address] = received.message["From"].addresses
    assert sender_address.display_name == "Zoë, Stockpulse"
    assert sender_address.addr_spec == FROM
