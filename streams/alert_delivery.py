"""The alert sender: turns alert deliveries into emails and hands them to ``SMTP_URL``.

A process of its own (``stockpulse alert-sender``), so a slow or broken mail server never
holds up the worker, and one sender can be stopped or killed without touching anything else.

* **Grouping.** Deliveries wait in ``alert_deliveries`` (written with their alert, in the
  worker's transaction). Immediate ones of a shop and recipient go out together once none
  joined them for ``ALERT_BATCH_WINDOW_S`` (1 s), or three windows after the first: a burst
  of fifty crossings, which the worker fires over a few forecast rounds, is one email, and a
  lone crossing waits one window. Digest
  ones go out once a day, when the shop-local clock (or the alert settings' time zone) reaches
  the digest hour. Grouping writes an ``alert_emails`` row with its Message-ID and commits
  before anything is sent, so the email's content and id never change afterwards.
* **Sending.** A sender takes a due email with a row lock that it holds through the SMTP
  conversation and releases with the mark. Killed before the server accepted the message, the
  lock goes with its connection and the next sender sends it once; killed after acceptance
  but before the mark, the next one sends it again with the same Message-ID, which mail
  systems drop as a duplicate. Temporary failures retry with doubling backoff (up to 5 minutes)
  for a day; permanent ones (5xx, a refused recipient) are marked failed at once and shown on
  the Alerts page and in ``/metrics``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from email.utils import parseaddr
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from connectors import links
from connectors.db import alerts as db
from connectors.db.pool import DictConnection, open_pool
from connectors.db.shops import get_shop
from connectors.mail import (
    MailError,
    OutgoingMail,
    PermanentMailError,
    SmtpSender,
    TemporaryMailError,
    one_line,
)
from connectors.outages import log_failure
from connectors.settings import Settings, get_settings
from connectors.zones import zone_or_utc
from models.alerts import SEVERITY, TITLES, Rule, digest_day_due, digest_instant, headline

log = logging.getLogger("stockpulse.alert_sender")

TEMPLATES = Path(__file__).parent / "templates" / "mail"
MAX_BACKOFF_S = 300.0
GIVE_UP_AFTER = timedelta(hours=24)
IDLE_WAKE_S = 15.0  # digests are due on the hour; nothing else needs a poll
# A group of immediate alerts goes out once none joined it for ALERT_BATCH_WINDOW_S, and at
# the latest this many windows after its first alert.
BURST_CAP_WINDOWS = 3
_SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}

Clock = Callable[[], datetime]


def backoff_s(attempts: int) -> float:
    """Delay before the next try after ``attempts`` failed ones: 1, 2, 4 … 300 seconds."""
    return float(min(MAX_BACKOFF_S, 2 ** max(attempts - 1, 0)))


@dataclass(frozen=True)
class _Item:
    """One product in an email, with every rule it crossed."""

    variant_id: int
    title: str
    sku: str | None
    url: str
    severity: str
    rules: list[dict[str, str]]
    figures: dict[str, Any]


class AlertSender:
    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock | None = None,
        smtp: SmtpSender | None = None,
        concurrency: int = 4,
    ) -> None:
        self.settings = settings
        self.clock = clock or (lambda: datetime.now(UTC))
        name, address = parseaddr(settings.mail_from)
        self.smtp = smtp or SmtpSender(settings.smtp_url, address, from_name=name or None)
        self.domain = address.rsplit("@", 1)[1]
        self.concurrency = concurrency
        self.base_url = settings.stockpulse_base_url.rstrip("/")
        self._templates = Environment(
            loader=FileSystemLoader(TEMPLATES),
            autoescape=select_autoescape(enabled_extensions=("html",)),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self._pool: AsyncConnectionPool[DictConnection] | None = None

    async def open(self) -> None:
        if self._pool is None:
            self._pool = await open_pool(self.settings.database_url, max_size=self.concurrency + 1)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    @property
    def pool(self) -> AsyncConnectionPool[DictConnection]:
        assert self._pool is not None, "open() first"
        return self._pool

    # -- the loop --------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Group and send until ``stop`` is set; woken by the deliveries' NOTIFY."""
        await self.open()
        wake = asyncio.Event()
        listener = asyncio.create_task(self._listen(wake, stop))
        log.info("alert sender up: mail goes to %s", self.smtp.endpoint)
        try:
            while not stop.is_set():
                wake.clear()
                try:
                    pause = await self.run_once()
                except Exception:
                    log_failure(log, "alert sending round failed; will retry")
                    pause = 2.0
                with contextlib.suppress(TimeoutError):
                    stop_wait = asyncio.create_task(stop.wait())
                    wake_wait = asyncio.create_task(wake.wait())
                    await asyncio.wait(
                        {stop_wait, wake_wait},
                        timeout=pause,
                        return_when=asyncio.FIRST_COMPLETED,
                    )
                    stop_wait.cancel()
                    wake_wait.cancel()
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
            await self.close()

    async def _listen(self, wake: asyncio.Event, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                async with await AsyncConnection.connect(
                    self.settings.database_url, autocommit=True
                ) as conn:
                    await conn.execute(f"LISTEN {db.CHANNEL}")
                    wake.set()  # anything committed while we were not listening
                    async for _ in conn.notifies():
                        wake.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("listening for new alerts failed (%s); polling meanwhile", exc)
                await asyncio.sleep(2.0)

    async def run_once(self) -> float:
        """Group what is due, send what is due; seconds until something may be due next."""
        until_group = await self.group_due()
        await self.send_due()
        async with self.pool.connection() as conn:
            retry_at = await db.next_wake(conn)
            await conn.commit()
        pause = min(IDLE_WAKE_S, until_group)
        if retry_at is not None:
            pause = min(pause, max((retry_at - datetime.now(UTC)).total_seconds(), 0.0))
        return max(pause, 0.01)

    # -- grouping ---------------------------------------------------------------------------

    async def group_due(self) -> float:
        """Make the emails that are due; seconds until the next immediate group is."""
        window = self.settings.alert_batch_window_s
        next_in = IDLE_WAKE_S
        async with self.pool.connection() as conn:
            # One grouper at a time across senders; waiting briefly is cheaper than a conflict.
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended('alert-grouping', 0))"
            )
            now_db = await _db_now(conn)
            for group in await db.waiting_immediate(conn):
                # A burst reaches us in several forecast rounds, each a fraction of a second
                # after the last: wait until none came for a window, or the cap is reached.
                due_at = min(
                    group.newest + timedelta(seconds=window),
                    group.oldest + timedelta(seconds=window * BURST_CAP_WINDOWS),
                )
                due_in = (due_at - now_db).total_seconds()
                if due_in > 0:
                    next_in = min(next_in, due_in)
                    continue
                await db.make_email(
                    conn,
                    group.shop,
                    group.recipient,
                    kind="immediate",
                    secret=self.settings.stockpulse_secret_key,
                    domain=self.domain,
                )
            now = self.clock()
            for shop in await db.waiting_digest_shops(conn):
                zone = zone_or_utc(shop["time_zone"])
                day = digest_day_due(now, zone, shop["digest_hour"])
                if day is None:
                    continue
                # Only alerts from before the day's digest hour: a shop quiet at 08:00 got its
                # "daily digest" with the first alert after it, at any hour (an outside test).
                # An age, not an instant: the database's clock stamps the deliveries.
                since_due = max(now - digest_instant(day, zone, shop["digest_hour"]), timedelta())
                for recipient in await _digest_recipients(conn, shop["shop"]):
                    await db.make_email(
                        conn,
                        shop["shop"],
                        recipient,
                        kind="digest",
                        digest_day=day,
                        older_than=since_due,
                        secret=self.settings.stockpulse_secret_key,
                        domain=self.domain,
                    )
            await conn.commit()
        return next_in

    # -- sending ----------------------------------------------------------------------------

    async def send_due(self) -> int:
        """Send every email that is due, ``concurrency`` at a time; how many were tried."""
        counts = await asyncio.gather(*(self._send_loop() for _ in range(self.concurrency)))
        return sum(counts)

    async def _send_loop(self) -> int:
        tried = 0
        while await self.send_one():
            tried += 1
        return tried

    async def send_one(self) -> bool:
        """Take one due email and try it; False when none is due."""
        async with self.pool.connection() as conn:
            email = await db.claim_due_email(conn)
            if email is None:
                await conn.rollback()
                return False
            try:
                await self._deliver(conn, email)
            except Exception as exc:
                # Our own bug (a template, a bad row): never retried into a loop, never lost.
                log.exception("alert email %s could not be built", email.id)
                await conn.rollback()
                await db.mark_failed(conn, email.id, f"could not build the email: {exc}")
            await conn.commit()
            return True

    async def _deliver(self, conn: DictConnection, email: db.Email) -> None:
        if email.kind != "test" and not await db.recipient_active(
            conn, email.shop, email.recipient
        ):
            await db.mark_cancelled(conn, email.id, "the recipient unsubscribed")
            return
        mail = await self.compose(conn, email)
        try:
            delivery = await self.smtp.send(mail)
        except TemporaryMailError as exc:
            if datetime.now(UTC) - email.created_at > GIVE_UP_AFTER:
                await db.mark_failed(conn, email.id, f"gave up after a day: {exc}")
            else:
                delay = backoff_s(email.attempts + 1)
                log.warning(
                    "alert email %s to %s: %s; retry in %.0fs",
                    email.id,
                    email.recipient,
                    exc,
                    delay,
                )
                await db.mark_retry(conn, email.id, str(exc), delay)
        except (PermanentMailError, ValueError) as exc:
            log.error("alert email %s to %s failed: %s", email.id, email.recipient, exc)
            await db.mark_failed(conn, email.id, str(exc))
        except MailError as exc:  # pragma: no cover - every MailError is one of the above
            await db.mark_failed(conn, email.id, str(exc))
        else:
            await db.mark_sent(conn, email.id, str(delivery.reply))

    # -- content ----------------------------------------------------------------------------

    async def compose(self, conn: DictConnection, email: db.Email) -> OutgoingMail:
        """The email, built only from what was stored when it was made: a resend is the same
        message."""
        shop = await get_shop(conn, email.shop) or {"name": None, "timezone": "UTC"}
        shop_name = shop["name"] or email.shop
        zone = zone_or_utc(shop["timezone"])
        alerts = await db.email_alerts(conn, email.id) if email.kind != "test" else []
        items = self._items(email.shop, alerts) if alerts else [self._sample(email.shop)]
        token = links.sign(
            self.settings.stockpulse_secret_key, links.UNSUBSCRIBE, [email.shop, email.recipient]
        )
        unsubscribe = f"{self.base_url}/alerts/unsubscribe/{token}"
        context = {
            "kind": email.kind,
            "shop_name": shop_name,
            "items": items,
            "count": len(alerts),
            "digest_day": email.digest_day,
            "fired": [
                (a.fired_at.astimezone(zone).strftime("%a %d %b %H:%M %Z"), a) for a in alerts
            ],
            "dashboard_url": f"{self.base_url}/shops/{email.shop}",
            "alerts_url": f"{self.base_url}/shops/{email.shop}/alerts",
            "settings_url": f"{self.base_url}/shops/{email.shop}/settings",
            "unsubscribe_url": unsubscribe,
            "recipient": email.recipient,
        }
        return OutgoingMail(
            to=[email.recipient],
            subject=_subject(email, shop_name, items, len(alerts)),
            text=self._templates.get_template("alerts.txt").render(context),
            html=self._templates.get_template("alerts.html").render(context),
            headers={
                "List-Unsubscribe": f"<{unsubscribe}>",
                "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
                "Auto-Submitted": "auto-generated",
                # Which shop it is about, for filters and the demo's Mailbox page.
                "X-Stockpulse-Shop": email.shop,
            },
            message_id=email.message_id,
        )

    def _items(self, shop: str, alerts: list[db.FiredAlert]) -> list[_Item]:
        by_variant: dict[int, list[db.FiredAlert]] = defaultdict(list)
        for alert in alerts:
            by_variant[alert.variant_id].append(alert)
        items = []
        for variant_id, crossed in by_variant.items():
            latest = crossed[-1].figures
            severity = min((a.severity for a in crossed), key=_SEVERITY_ORDER.__getitem__)
            items.append(
                _Item(
                    variant_id=variant_id,
                    title=latest.get("title") or latest.get("sku") or f"Variant {variant_id}",
                    sku=latest.get("sku"),
                    url=f"{self.base_url}/shops/{shop}/products/{variant_id}",
                    severity=severity,
                    rules=[
                        {
                            "title": TITLES[Rule(a.rule)],
                            "headline": headline(Rule(a.rule), a.figures),
                        }
                        for a in crossed
                    ],
                    figures=latest,
                )
            )
        cover = lambda i: i.figures.get("days_of_cover")  # noqa: E731
        items.sort(
            key=lambda i: (
                _SEVERITY_ORDER[i.severity],
                cover(i) if cover(i) is not None else float("inf"),
                i.title,
            )
        )
        return items

    def _sample(self, shop: str) -> _Item:
        figures = {
            "sku": "SAMPLE-1",
            "title": "Sample product (a test of your alert settings)",
            "stock": 3,
            "low_stock_threshold": 5,
            "days_of_cover": 2.5,
            "stockout_date": (date.today() + timedelta(days=2)).isoformat(),
            "reorder_quantity": 40,
            "reorder_by": date.today().isoformat(),
            "lead_time_days": 14,
        }
        return _Item(
            variant_id=0,
            title=str(figures["title"]),
            sku="SAMPLE-1",
            url=f"{self.base_url}/shops/{shop}",
            severity=SEVERITY[Rule.LOW_STOCK],
            rules=[
                {"title": TITLES[Rule.LOW_STOCK], "headline": headline(Rule.LOW_STOCK, figures)}
            ],
            figures=figures,
        )


def _subject(email: db.Email, shop_name: str, items: list[_Item], count: int) -> str:
    return one_line(_subject_text(email, shop_name, items, count))


def _subject_text(email: db.Email, shop_name: str, items: list[_Item], count: int) -> str:
    if email.kind == "test":
        return f"Test alert from Stockpulse for {shop_name}"
    if email.kind == "digest":
        day = email.digest_day.strftime("%a %d %b") if email.digest_day else "today"
        return f"{shop_name} daily stock digest, {day}: {len(items)} product(s) to look at"
    if len(items) == 1:
        item = items[0]
        f = item.figures
        what = item.rules[0]["title"] if len(item.rules) == 1 else "Stock alert"
        runs_out = f", runs out {f['stockout_date']}" if f.get("stockout_date") else ""
        return f"{what}: {item.title}: {f.get('stock')} left{runs_out}"
    return f"{len(items)} products need attention at {shop_name}"


async def _db_now(conn: DictConnection) -> datetime:
    cur = await conn.execute("SELECT clock_timestamp() AS now")
    row = await cur.fetchone()
    assert row is not None
    now: datetime = row["now"]
    return now


async def _digest_recipients(conn: DictConnection, shop: str) -> list[str]:
    cur = await conn.execute(
        "SELECT DISTINCT recipient FROM alert_deliveries"
        " WHERE shop = %s AND email_id IS NULL AND via_digest ORDER BY recipient",
        (shop,),
    )
    return [r["recipient"] for r in await cur.fetchall()]


async def run_sender(settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await AlertSender(settings).run(stop)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m streams.alert_delivery", description=__doc__)
    parser.add_argument("--loglevel", default="info")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.loglevel.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    asyncio.run(run_sender(get_settings()))


if __name__ == "__main__":
    main()
