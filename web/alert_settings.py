"""A shop's alert settings as the settings page and the JSON API take and show them: who gets
alert emails, immediately or in a daily digest at a local hour, which rules are on, and the
test email. Parsed once here, the same way for the form and the API, all or nothing; the
routes are in ``web/settings.py``.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email.utils import parseaddr
from functools import cache
from typing import Any, Literal, cast
from zoneinfo import ZoneInfo

from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import PydanticCustomError

from connectors.db import alerts as db
from connectors.db.alerts import AlertSettings, Recipient
from connectors.db.pool import DictConnection
from connectors.mail.message import mailbox
from connectors.settings import Settings
from connectors.zones import place_zone, time_zones, zone_or_utc
from models.alerts import DIGEST_ONLY, TITLES, Rule, next_digest_at
from web.json_numbers import JsonInt

MAX_RECIPIENTS = 20
Mode = Literal["immediate", "digest"]
# Inclusive bounds of the numeric settings (the migration's CHECKs say the same).
BOUNDS = {
    "digest_hour": (0, 23),
    "stockout_within_days": (1, 90),
    "cooldown_hours": (0, 720),
}
TEST_WAIT_S = 10.0
TEST_EVERY_S = 60  # one test round a minute per shop
TEST_POLL_S = 0.2


@cache
def zone_choices() -> tuple[str, ...]:
    return tuple(sorted(time_zones()))


def normalise_address(text: str) -> str:
    """One recipient as stored: validated, the domain lowercased (the local part may be
    case-sensitive, RFC 5321 §2.4). ValueError saying what is wrong."""
    address = text.strip()
    try:
        address.encode()
    except UnicodeEncodeError:
        raise ValueError(f"{address!r} is not an email address: it is not valid text") from None
    if len(address) > 254:  # RFC 5321 §4.5.3.1.3, the path without its brackets
        raise ValueError(f"{address[:40]!r}… is too long for an email address")
    return mailbox("recipient", address)


def normalise_recipients(items: Iterable[str]) -> list[str]:
    """The recipients as stored, in the order given, each once. ValueError naming every bad
    address, or too many.

    "Once" ignores case: the local part may be case-sensitive by the RFC, but no mail provider
    we know of treats it so, and Bob@ and bob@ got every alert twice (an outside tester).
    """
    found: list[str] = []
    seen: set[str] = set()
    problems: list[str] = []
    for item in items:
        if not item.strip():
            continue
        try:
            address = normalise_address(item)
        except ValueError as exc:
            problems.append(str(exc))
            continue
        if address.lower() not in seen:
            seen.add(address.lower())
            found.append(address)
    if problems:
        raise ValueError("; ".join(problems[:3]) + ("; …" if len(problems) > 3 else ""))
    if len(found) > MAX_RECIPIENTS:
        raise ValueError(f"at most {MAX_RECIPIENTS} recipients (there are {len(found)})")
    return found


def check_time_zone(name: str | None) -> str | None:
    """None or blank: the shop's own. ValueError for a name that is not an IANA zone here."""
    if name is None or not name.strip():
        return None
    known = place_zone(name)
    if known is None:
        raise ValueError(
            f"unknown time zone {name.strip()[:60]!r}: use an IANA name such as Europe/Berlin,"
            " or leave it blank for the shop's own"
        )
    return known


class AlertSettingsIn(BaseModel):
    """Alert settings as the API takes them. A field left out keeps its current value;
    ``time_zone`` null means the shop's own, as Shopify reports it. ``recipients`` replaces the
    list: one already on it keeps its state (an unsubscribed one stays unsubscribed)."""

    model_config = ConfigDict(extra="forbid")
    recipients: list[str] = Field(
        default_factory=list,
        description=f"Email addresses, at most {MAX_RECIPIENTS}.",
    )
    mode: Mode = Field(
        default="immediate",
        description="immediate: an email within seconds; digest: one a day at digest_hour.",
    )
    # JSON numbers only: `true` was read as 1 (an outside test).
    digest_hour: JsonInt = Field(
        default=8,
        ge=0,
        le=23,
        description="Local hour of the digest.",
    )
    time_zone: str | None = Field(
        default=None, description="IANA time zone of the digest hour; null: the shop's own."
    )
    stockout_within_days: JsonInt = Field(
        default=7,
        ge=1,
        le=90,
        description="Warn when the forecast runs out within this.",
    )
    cooldown_hours: JsonInt = Field(
        default=24,
        ge=0,
        le=720,
        description="Quiet time of a product's rule after it fired.",
    )
    rules: list[Rule] = Field(
        default_factory=lambda: list(Rule),
        description="The rules that are on (overstock and dead stock: daily digest only).",
    )

    @field_validator("recipients")
    @classmethod
    def _recipients(cls, value: list[str]) -> list[str]:
        try:
            return normalise_recipients(value)
        except ValueError as exc:
            # A custom error keeps pydantic's "Value error, " prefix off the message.
            raise PydanticCustomError("recipients", "{reason}", {"reason": str(exc)}) from None

    @field_validator("time_zone")
    @classmethod
    def _time_zone(cls, value: str | None) -> str | None:
        try:
            return check_time_zone(value)
        except ValueError as exc:
            raise PydanticCustomError("time_zone", "{reason}", {"reason": str(exc)}) from None

    def over(self, current: AlertSettings) -> AlertSettings:
        """The settings with what this sets replacing ``current``."""
        given = self.model_fields_set - {"recipients"}
        values: dict[str, Any] = {name: getattr(self, name) for name in given}
        if "rules" in values:
            values["rules"] = frozenset(str(rule) for rule in self.rules)
        return replace(current, **values)


class RecipientOut(BaseModel):
    email: str
    active: bool
    unsubscribed_at: datetime | None = Field(description="When they used the unsubscribe link.")


class AlertSettingsOut(BaseModel):
    """A shop's alert settings, with what follows from them."""

    mode: Mode
    digest_hour: int
    time_zone: str | None = Field(description="The zone set here; null: the shop's own.")
    shop_time_zone: str = Field(description="The shop's own time zone, from Shopify.")
    time_zone_in_force: str
    next_digest_at: datetime | None = Field(
        description="When the next daily digest goes out (digest mode, or a digest-only rule"
        " on); null when nothing is sent in digests."
    )
    stockout_within_days: int
    cooldown_hours: int
    rules: list[Rule]
    recipients: list[RecipientOut]


def sends_digests(values: AlertSettings) -> bool:
    return values.mode == "digest" or any(str(rule) in values.rules for rule in DIGEST_ONLY)


def public(
    values: AlertSettings, people: Sequence[Recipient], shop_zone: str | None
) -> AlertSettingsOut:
    in_force = values.time_zone or shop_zone or "UTC"
    return AlertSettingsOut(
        mode=cast(Mode, values.mode),
        digest_hour=values.digest_hour,
        time_zone=values.time_zone,
        shop_time_zone=shop_zone or "UTC",
        time_zone_in_force=in_force,
        next_digest_at=(
            next_digest_at(datetime.now(UTC), zone_or_utc(in_force), values.digest_hour)
            if sends_digests(values)
            else None
        ),
        stockout_within_days=values.stockout_within_days,
        cooldown_hours=values.cooldown_hours,
        rules=[rule for rule in Rule if str(rule) in values.rules],
        recipients=[
            RecipientOut(email=r.email, active=r.active, unsubscribed_at=r.unsubscribed_at)
            for r in people
        ],
    )


# -- the form ------------------------------------------------------------------------------


@dataclass(frozen=True)
class FormInput:
    """What the form sent, as typed, to show again when it is refused."""

    recipients: str
    mode: str
    digest_hour: str
    time_zone: str
    stockout_within_days: str
    cooldown_hours: str
    rules: tuple[str, ...]


_SPLIT = re.compile(r"[,;\r\n]+")


def form_input(form: Mapping[str, Any], rules: Sequence[str]) -> FormInput:
    def text(name: str) -> str:
        value = form.get(name)
        return value.strip() if isinstance(value, str) else ""

    return FormInput(
        recipients=text("recipients"),
        mode=text("mode"),
        digest_hour=text("digest_hour"),
        time_zone=text("time_zone"),
        stockout_within_days=text("stockout_within_days"),
        cooldown_hours=text("cooldown_hours"),
        rules=tuple(r for r in rules if isinstance(r, str)),
    )


def form_of(values: AlertSettings, people: Sequence[Recipient]) -> FormInput:
    """The form filled in with what is saved (every recipient, unsubscribed ones too, so a
    save does not drop them unseen)."""
    return FormInput(
        recipients="\n".join(r.email for r in people),
        mode=values.mode,
        digest_hour=str(values.digest_hour),
        time_zone=values.time_zone or "",
        stockout_within_days=str(values.stockout_within_days),
        cooldown_hours=str(values.cooldown_hours),
        rules=tuple(str(rule) for rule in Rule if str(rule) in values.rules),
    )


def parse_form(sent: FormInput) -> tuple[AlertSettingsIn | None, dict[str, str]]:
    """The settings the form asks for, or a message per field that is wrong (then nothing may
    be saved)."""
    raw: dict[str, Any] = {
        "recipients": _SPLIT.split(sent.recipients),
        "mode": sent.mode,
        "time_zone": sent.time_zone or None,
        "rules": list(sent.rules),
    }
    errors: dict[str, str] = {}
    for name, (low, high) in BOUNDS.items():
        text = getattr(sent, name)
        if re.fullmatch(r"-?[0-9]{1,9}", text) is None:
            errors[name] = f"enter a whole number from {low} to {high}"
        else:
            raw[name] = int(text)
    try:
        parsed = AlertSettingsIn.model_validate(raw)
    except ValidationError as exc:
        for error in exc.errors():
            name = str(error["loc"][0])
            errors.setdefault(name, _plain(name, error))
        parsed = None
    return (None, errors) if errors else (parsed, {})


def _plain(name: str, error: Mapping[str, Any]) -> str:
    if name in BOUNDS:
        low, high = BOUNDS[name]
        return f"enter a whole number from {low} to {high}"
    if name == "mode":
        return "choose immediate emails or a daily digest"
    if name == "rules":
        return f"unknown rule {str(error.get('input'))[:60]!r}"
    return str(error["msg"])


# -- what the page shows -------------------------------------------------------------------


@dataclass(frozen=True)
class RuleChoice:
    name: str
    title: str
    digest_only: bool


RULE_CHOICES = tuple(RuleChoice(str(r), TITLES[r], r in DIGEST_ONLY) for r in Rule)


def when(at: datetime | None, zone: ZoneInfo) -> str:
    return at.astimezone(zone).strftime("%a %d %b %Y, %H:%M %Z") if at else ""


async def page_context(
    conn: DictConnection,
    shop: str,
    shop_zone: str | None,
    *,
    sent: FormInput | None = None,
    errors: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The Alerts section's context: what is saved, and the form (as typed when refused)."""
    values = await db.settings_of(conn, shop)
    people = await db.recipients(conn, shop)
    in_force = values.time_zone or shop_zone or "UTC"
    zone = zone_or_utc(in_force)
    return {
        "saved": values,
        "form": sent or form_of(values, people),
        "errors": dict(errors or {}),
        "recipients": [
            {"email": r.email, "active": r.active, "since": when(r.unsubscribed_at, zone)}
            for r in people
        ],
        "active_count": sum(r.active for r in people),
        "shop_zone": shop_zone or "UTC",
        "zone_in_force": in_force,
        "next_digest": (
            when(next_digest_at(datetime.now(UTC), zone, values.digest_hour), zone)
            if sends_digests(values)
            else ""
        ),
        "rules": RULE_CHOICES,
        "zones": zone_choices(),
        "max_recipients": MAX_RECIPIENTS,
    }


# -- the test email ------------------------------------------------------------------------


@dataclass(frozen=True)
class TestOutcome:
    recipient: str
    # accepted, refused, retrying or waiting
    status: str
    detail: str


def mail_domain(settings: Settings) -> str:
    """The domain of MAIL_FROM, which the sender's Message-IDs use as well."""
    return parseaddr(settings.mail_from)[1].rpartition("@")[2] or "localhost"


class TestTooSoon(Exception):
    def __init__(self, wait_s: int) -> None:
        super().__init__(f"a test email went out less than {TEST_EVERY_S} s ago")
        self.wait_s = wait_s


async def send_test(
    pool: AsyncConnectionPool[DictConnection], settings: Settings, shop: str
) -> list[TestOutcome]:
    """Queue a test email to every active recipient and wait (up to ``TEST_WAIT_S``) for the
    sender to report on each; empty when there is no active recipient. TestTooSoon within
    TEST_EVERY_S of the shop's last test: recipients never confirmed their address, so the
    button must not be a way to flood them."""
    async with pool.connection() as conn:
        since = await db.last_test_email_age(conn, shop)
        if since is not None and since < TEST_EVERY_S:
            raise TestTooSoon(max(1, round(TEST_EVERY_S - since)))
        active = [r.email for r in await db.recipients(conn, shop) if r.active]
        queued = [
            (
                email,
                await db.queue_test_email(
                    conn,
                    shop,
                    email,
                    secret=settings.stockpulse_secret_key,
                    domain=mail_domain(settings),
                ),
            )
            for email in active
        ]
        await conn.commit()
    deadline = time.monotonic() + TEST_WAIT_S
    outcomes: list[TestOutcome] = []
    while queued:
        async with pool.connection() as conn:
            outcomes = [
                _outcome(email, await db.email_outcome(conn, shop, email_id))
                for email, email_id in queued
            ]
            await conn.commit()
        if all(o.status != "waiting" for o in outcomes) or time.monotonic() >= deadline:
            break
        await asyncio.sleep(TEST_POLL_S)
    return outcomes


def _outcome(recipient: str, row: Mapping[str, Any] | None) -> TestOutcome:
    if row is None:  # the shop went away meanwhile
        return TestOutcome(recipient, "refused", "the email is gone")
    if row["state"] == "sent":
        return TestOutcome(recipient, "accepted", row["smtp_reply"] or "")
    if row["state"] in ("failed", "cancelled"):
        return TestOutcome(recipient, "refused", row["last_error"] or row["state"])
    if row["attempts"] > 0:
        # A temporary failure: the sender keeps trying with backoff, so this is the answer
        # for now rather than something worth holding the page for.
        return TestOutcome(recipient, "retrying", row["last_error"] or "")
    return TestOutcome(recipient, "waiting", "")
