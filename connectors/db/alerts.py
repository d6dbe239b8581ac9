"""Alerts in PostgreSQL: a shop's alert settings and recipients, each rule's trigger per SKU,
fired alerts with their deliveries (the outbox), the emails the sender makes of them, and the
history the pages and the API read.

Rules are named by their string values (``models.alerts.Rule``); this module stores them.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from psycopg.types.json import Jsonb

from connectors.db.pool import DictConnection

RULE_NAMES = (
    "low_stock",
    "stockout_soon",
    "stockout_before_reorder",
    "reorder_point",
    "overstock",
    "dead_stock",
)
MODES = ("immediate", "digest")
# Wakes the sender (a trigger on alert_deliveries; the web app's test emails notify it too).
CHANNEL = "stockpulse_alert_deliveries"


@dataclass(frozen=True)
class AlertSettings:
    """How a shop is alerted. ``time_zone`` None: the shop's own, as Shopify reports it."""

    mode: str = "immediate"
    digest_hour: int = 8
    time_zone: str | None = None
    stockout_within_days: int = 7
    cooldown_hours: int = 24
    rules: frozenset[str] = field(default_factory=lambda: frozenset(RULE_NAMES))


@dataclass(frozen=True)
class Recipient:
    email: str
    active: bool
    unsubscribed_at: datetime | None


async def settings_of(conn: DictConnection, shop: str) -> AlertSettings:
    cur = await conn.execute(
        "SELECT mode, digest_hour, time_zone, stockout_within_days, cooldown_hours, rules"
        " FROM alert_settings WHERE shop = %s",
        (shop,),
    )
    row = await cur.fetchone()
    if row is None:
        return AlertSettings()
    return AlertSettings(
        mode=row["mode"],
        digest_hour=row["digest_hour"],
        time_zone=row["time_zone"],
        stockout_within_days=row["stockout_within_days"],
        cooldown_hours=row["cooldown_hours"],
        rules=frozenset(row["rules"]),
    )


async def save_settings(conn: DictConnection, shop: str, values: AlertSettings) -> None:
    await conn.execute(
        "INSERT INTO alert_settings (shop, mode, digest_hour, time_zone, stockout_within_days,"
        " cooldown_hours, rules) VALUES (%s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (shop) DO UPDATE SET mode = excluded.mode,"
        " digest_hour = excluded.digest_hour, time_zone = excluded.time_zone,"
        " stockout_within_days = excluded.stockout_within_days,"
        " cooldown_hours = excluded.cooldown_hours, rules = excluded.rules, updated_at = now()",
        (
            shop,
            values.mode,
            values.digest_hour,
            values.time_zone,
            values.stockout_within_days,
            values.cooldown_hours,
            sorted(values.rules, key=RULE_NAMES.index),
        ),
    )
    if values.mode == "immediate":
        # What waits for a digest goes now, as it would have had it fired now: switched back
        # to immediate, those alerts waited for the digest hour (an outside test).
        # Overstock and dead stock still go in the digest (digest_only).
        released = await conn.execute(
            "UPDATE alert_deliveries d SET via_digest = false FROM alerts a"
            " WHERE a.id = d.alert_id AND d.shop = %s AND d.email_id IS NULL AND d.via_digest"
            " AND NOT a.digest_only",
            (shop,),
        )
        if released.rowcount:
            await conn.execute("SELECT pg_notify(%s, '')", (CHANNEL,))


async def recipients(conn: DictConnection, shop: str) -> list[Recipient]:
    cur = await conn.execute(
        "SELECT email, active, unsubscribed_at FROM alert_recipients WHERE shop = %s"
        " ORDER BY added_at, email",
        (shop,),
    )
    return [Recipient(r["email"], r["active"], r["unsubscribed_at"]) for r in await cur.fetchall()]


async def set_recipients(conn: DictConnection, shop: str, emails: Sequence[str]) -> None:
    """Make the shop's recipients exactly ``emails`` (already validated and normalised). One
    already listed keeps its state: listing again someone who unsubscribed does not resubscribe
    them behind their back (see :func:`resubscribe`). "Already listed" ignores case, as one
    mailbox is one recipient (migration 0037)."""
    await conn.execute(
        "DELETE FROM alert_recipients WHERE shop = %s AND NOT (lower(email) = ANY(%s))",
        (shop, [email.lower() for email in emails]),
    )
    async with conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO alert_recipients (shop, email) VALUES (%s, %s) ON CONFLICT DO NOTHING",
            [(shop, email) for email in emails],
        )


async def resubscribe(conn: DictConnection, shop: str, email: str) -> bool:
    cur = await conn.execute(
        "UPDATE alert_recipients SET active = true, unsubscribed_at = NULL"
        " WHERE shop = %s AND lower(email) = lower(%s)",
        (shop, email),
    )
    return cur.rowcount > 0


async def unsubscribe(conn: DictConnection, shop: str, email: str) -> bool:
    """Turn a recipient off (the one-click link of their emails); whether one was on."""
    cur = await conn.execute(
        "UPDATE alert_recipients SET active = false, unsubscribed_at = now()"
        " WHERE shop = %s AND lower(email) = lower(%s) AND active",
        (shop, email),
    )
    return cur.rowcount > 0


# -- triggers ------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredTrigger:
    armed: bool
    last_fired_at: datetime | None


async def lock_shop(conn: DictConnection, shop: str) -> None:
    """Serialise alert evaluation per shop, in the caller's transaction: two workers'
    rounds on the same SKUs must not both see a trigger armed and both fire it."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended('alerts:' || %s, 0))", (shop,)
    )


async def triggers(
    conn: DictConnection, shop: str, variant_ids: Sequence[int]
) -> dict[tuple[int, str], StoredTrigger]:
    cur = await conn.execute(
        "SELECT variant_id, rule, armed, last_fired_at FROM alert_states"
        " WHERE shop = %s AND variant_id = ANY(%s)",
        (shop, list(variant_ids)),
    )
    return {
        (r["variant_id"], r["rule"]): StoredTrigger(r["armed"], r["last_fired_at"])
        for r in await cur.fetchall()
    }


async def days_known(conn: DictConnection, shop: str, variant_ids: Sequence[int]) -> dict[int, int]:
    """Days since each SKU first appeared: its first sale or first sighting, the older."""
    if not variant_ids:
        return {}
    cur = await conn.execute(
        "SELECT v.variant_id, (now() AT TIME ZONE s.timezone)::date - least("
        "   (v.first_seen_at AT TIME ZONE s.timezone)::date,"
        "   (SELECT min(d.day) FROM daily_demand d"
        "     WHERE d.shop = v.shop AND d.variant_id = v.variant_id AND d.units > 0)) AS days"
        " FROM variants v JOIN shops s ON s.domain = v.shop"
        " WHERE v.shop = %s AND v.variant_id = ANY(%s)",
        (shop, list(variant_ids)),
    )
    return {r["variant_id"]: int(r["days"]) for r in await cur.fetchall()}


async def save_triggers(
    conn: DictConnection, shop: str, changed: dict[tuple[int, str], StoredTrigger]
) -> None:
    if not changed:
        return
    async with conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO alert_states (shop, variant_id, rule, armed, last_fired_at)"
            " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (shop, variant_id, rule) DO UPDATE"
            " SET armed = excluded.armed, last_fired_at = excluded.last_fired_at,"
            " changed_at = now()",
            [
                (shop, variant_id, rule, t.armed, t.last_fired_at)
                for (variant_id, rule), t in sorted(changed.items())
            ],
        )


# -- firing (the outbox) -------------------------------------------------------------------


@dataclass(frozen=True)
class NewAlert:
    variant_id: int
    rule: str
    severity: str
    digest_only: bool
    fired_at: datetime
    figures: dict[str, Any]


@dataclass(frozen=True)
class FiredAlert:
    id: int
    shop: str
    variant_id: int
    rule: str
    severity: str
    digest_only: bool
    fired_at: datetime
    figures: dict[str, Any]


async def record(
    conn: DictConnection, shop: str, alerts: Sequence[NewAlert], mode: str
) -> list[FiredAlert]:
    """Write fired alerts and a delivery per active recipient, in the caller's transaction:
    what commits is sent, what does not was never fired."""
    if not alerts:
        return []
    fired: list[FiredAlert] = []
    async with conn.cursor() as cur:
        for alert in alerts:
            await cur.execute(
                "INSERT INTO alerts (shop, variant_id, rule, severity, fired_at, digest_only,"
                " figures) VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
                (
                    shop,
                    alert.variant_id,
                    alert.rule,
                    alert.severity,
                    alert.fired_at,
                    alert.digest_only,
                    Jsonb(alert.figures),
                ),
            )
            row = await cur.fetchone()
            assert row is not None
            fired.append(
                FiredAlert(
                    id=row["id"],
                    shop=shop,
                    variant_id=alert.variant_id,
                    rule=alert.rule,
                    severity=alert.severity,
                    digest_only=alert.digest_only,
                    fired_at=alert.fired_at,
                    figures=alert.figures,
                )
            )
    await conn.execute(
        "INSERT INTO alert_deliveries (alert_id, recipient, shop, via_digest)"
        " SELECT a.id, r.email, a.shop, a.digest_only OR %s"
        "   FROM alerts a JOIN alert_recipients r ON r.shop = a.shop AND r.active"
        "  WHERE a.id = ANY(%s)",
        (mode == "digest", [a.id for a in fired]),
    )
    return fired


async def unpublished(
    conn: DictConnection, older_than_s: float, limit: int = 500
) -> list[FiredAlert]:
    """Alerts committed but not acknowledged on Kafka for a while: their publisher crashed."""
    cur = await conn.execute(
        "SELECT id, shop, variant_id, rule, severity, digest_only, fired_at, figures FROM alerts"
        " WHERE published_at IS NULL AND fired_at < now() - make_interval(secs => %s)"
        " ORDER BY fired_at, id LIMIT %s",
        (older_than_s, limit),
    )
    return [FiredAlert(**r) for r in await cur.fetchall()]


async def mark_published(conn: DictConnection, ids: Sequence[int]) -> None:
    if ids:
        await conn.execute(
            "UPDATE alerts SET published_at = now() WHERE id = ANY(%s) AND published_at IS NULL",
            (list(ids),),
        )


# -- emails (the sender's side) ------------------------------------------------------------


def message_id(secret: str, domain: str, shop: str, recipient: str, email_id: int) -> str:
    """The Message-ID of an alert email, fixed when the email is made: every copy of it (a
    resend after a crash between the server's acceptance and our mark) carries the same one.
    The keyed hash keeps ids distinct between deployments that share a sending domain."""
    tag = hmac.new(
        secret.encode(), f"{shop}|{recipient}|{email_id}".encode(), hashlib.sha256
    ).hexdigest()[:16]
    return f"<alerts.{email_id}.{tag}@{domain}>"


@dataclass(frozen=True)
class WaitingGroup:
    shop: str
    recipient: str
    oldest: datetime
    newest: datetime


async def waiting_immediate(conn: DictConnection) -> list[WaitingGroup]:
    """Per shop and recipient, the oldest and newest deliveries waiting for an immediate
    email."""
    cur = await conn.execute(
        "SELECT shop, recipient, min(created_at) AS oldest, max(created_at) AS newest"
        " FROM alert_deliveries WHERE email_id IS NULL AND NOT via_digest"
        " GROUP BY shop, recipient"
    )
    return [WaitingGroup(**r) for r in await cur.fetchall()]


async def waiting_digest_shops(conn: DictConnection) -> list[dict[str, Any]]:
    """Shops with deliveries waiting for a digest, with their digest hour and time zone."""
    cur = await conn.execute(
        "SELECT d.shop, coalesce(st.digest_hour, 8) AS digest_hour,"
        " coalesce(st.time_zone, s.timezone, 'UTC') AS time_zone"
        " FROM (SELECT DISTINCT shop FROM alert_deliveries"
        "       WHERE email_id IS NULL AND via_digest) d"
        " JOIN shops s ON s.domain = d.shop"
        " LEFT JOIN alert_settings st ON st.shop = d.shop"
    )
    return list(await cur.fetchall())


async def make_email(
    conn: DictConnection,
    shop: str,
    recipient: str,
    *,
    kind: str,
    secret: str,
    domain: str,
    digest_day: date | None = None,
    older_than: timedelta = timedelta(),
) -> int | None:
    """Put every delivery waiting for ``recipient`` (of the digest when ``kind`` is digest,
    else the immediate ones) and made at least ``older_than`` ago into one new email; its
    id, or None when there was nothing to put in or the day's digest was made already.
    Commit before sending: from then on the email's content and Message-ID are fixed."""
    cur = await conn.execute(
        "INSERT INTO alert_emails (shop, recipient, kind, digest_day, message_id, state,"
        " last_error)"
        " SELECT %s, %s, %s, %s, '', CASE WHEN r.active THEN 'sending' ELSE 'cancelled' END,"
        "        CASE WHEN r.active THEN NULL ELSE 'the recipient unsubscribed' END"
        " FROM (SELECT coalesce((SELECT active FROM alert_recipients"
        "                         WHERE shop = %s AND email = %s), false) AS active) r"
        " ON CONFLICT (shop, recipient, digest_day) WHERE kind = 'digest' DO NOTHING"
        " RETURNING id",
        (shop, recipient, kind, digest_day, shop, recipient),
    )
    row = await cur.fetchone()
    if row is None:
        return None
    email_id: int = row["id"]
    taken = await conn.execute(
        "UPDATE alert_deliveries SET email_id = %s WHERE shop = %s AND recipient = %s"
        " AND email_id IS NULL AND via_digest = %s AND created_at <= clock_timestamp() - %s",
        (email_id, shop, recipient, kind == "digest", older_than),
    )
    if taken.rowcount == 0:
        await conn.execute("DELETE FROM alert_emails WHERE id = %s", (email_id,))
        return None
    await conn.execute(
        "UPDATE alert_emails SET message_id = %s WHERE id = %s",
        (message_id(secret, domain, shop, recipient, email_id), email_id),
    )
    return email_id


async def last_test_email_age(conn: DictConnection, shop: str) -> float | None:
    """Seconds since the shop's last test email was queued; None if it never sent one."""
    cur = await conn.execute(
        "SELECT extract(epoch FROM now() - max(created_at)) AS age FROM alert_emails"
        " WHERE shop = %s AND kind = 'test'",
        (shop,),
    )
    row = await cur.fetchone()
    return None if row is None or row["age"] is None else float(row["age"])


async def queue_test_email(
    conn: DictConnection, shop: str, recipient: str, *, secret: str, domain: str
) -> int:
    """A sample alert email for ``recipient`` (the settings page's test), sent by the sender
    like any other so the test goes through the same server, login and TLS."""
    cur = await conn.execute(
        "INSERT INTO alert_emails (shop, recipient, kind, message_id) VALUES"
        " (%s, %s, 'test', '') RETURNING id",
        (shop, recipient),
    )
    row = await cur.fetchone()
    assert row is not None
    await conn.execute(
        "UPDATE alert_emails SET message_id = %s WHERE id = %s",
        (message_id(secret, domain, shop, recipient, row["id"]), row["id"]),
    )
    await conn.execute("SELECT pg_notify(%s, '')", (CHANNEL,))
    return int(row["id"])


@dataclass(frozen=True)
class Email:
    id: int
    shop: str
    recipient: str
    kind: str
    digest_day: date | None
    message_id: str
    attempts: int
    created_at: datetime


async def claim_due_email(conn: DictConnection) -> Email | None:
    """The next email due, row-locked until the caller's transaction ends: a sender holds it
    for the whole SMTP conversation, and a sender that dies lets it go with its connection."""
    cur = await conn.execute(
        "SELECT id, shop, recipient, kind, digest_day, message_id, attempts, created_at"
        " FROM alert_emails WHERE state = 'sending' AND next_attempt_at <= now()"
        " ORDER BY next_attempt_at, id LIMIT 1 FOR UPDATE SKIP LOCKED"
    )
    row = await cur.fetchone()
    return Email(**row) if row else None


async def email_alerts(conn: DictConnection, email_id: int) -> list[FiredAlert]:
    cur = await conn.execute(
        "SELECT a.id, a.shop, a.variant_id, a.rule, a.severity, a.digest_only, a.fired_at,"
        " a.figures FROM alert_deliveries d JOIN alerts a ON a.id = d.alert_id"
        " WHERE d.email_id = %s ORDER BY a.fired_at, a.id",
        (email_id,),
    )
    return [FiredAlert(**r) for r in await cur.fetchall()]


async def recipient_active(conn: DictConnection, shop: str, email: str) -> bool:
    cur = await conn.execute(
        "SELECT active FROM alert_recipients WHERE shop = %s AND email = %s", (shop, email)
    )
    row = await cur.fetchone()
    return bool(row and row["active"])


async def mark_sent(conn: DictConnection, email_id: int, reply: str) -> None:
    await conn.execute(
        "UPDATE alert_emails SET state = 'sent', sent_at = now(), smtp_reply = %s,"
        " attempts = attempts + 1, last_error = NULL WHERE id = %s",
        (reply, email_id),
    )


async def mark_retry(conn: DictConnection, email_id: int, error: str, delay_s: float) -> None:
    await conn.execute(
        "UPDATE alert_emails SET attempts = attempts + 1, last_error = %s,"
        " next_attempt_at = now() + make_interval(secs => %s) WHERE id = %s",
        (error[:1000], delay_s, email_id),
    )


async def mark_failed(conn: DictConnection, email_id: int, error: str) -> None:
    await conn.execute(
        "UPDATE alert_emails SET state = 'failed', attempts = attempts + 1, last_error = %s"
        " WHERE id = %s",
        (error[:1000], email_id),
    )


async def mark_cancelled(conn: DictConnection, email_id: int, reason: str) -> None:
    await conn.execute(
        "UPDATE alert_emails SET state = 'cancelled', last_error = %s WHERE id = %s",
        (reason, email_id),
    )


async def email_outcome(conn: DictConnection, shop: str, email_id: int) -> dict[str, Any] | None:
    cur = await conn.execute(
        "SELECT state, attempts, last_error, smtp_reply FROM alert_emails"
        " WHERE id = %s AND shop = %s",
        (email_id, shop),
    )
    return await cur.fetchone()


async def next_wake(conn: DictConnection) -> datetime | None:
    """When the earliest retry is due, for the sender's sleep."""
    cur = await conn.execute(
        "SELECT min(next_attempt_at) AS at FROM alert_emails WHERE state = 'sending'"
    )
    row = await cur.fetchone()
    return row["at"] if row else None


async def delivery_counts(conn: DictConnection) -> dict[str, Any]:
    """For /metrics: emails by state, retrying ones, and the age of the oldest unsent."""
    cur = await conn.execute(
        "SELECT count(*) FILTER (WHERE state = 'sending' AND attempts = 0) AS pending,"
        " count(*) FILTER (WHERE state = 'sending' AND attempts > 0) AS retrying,"
        " count(*) FILTER (WHERE state = 'failed') AS failed,"
        " count(*) FILTER (WHERE state = 'sent') AS sent,"
        " coalesce(extract(epoch FROM now() - min(created_at) FILTER"
        "   (WHERE state = 'sending')), 0)::float AS oldest_unsent_s"
        " FROM alert_emails"
    )
    row = await cur.fetchone()
    assert row is not None
    waiting = await conn.execute(
        "SELECT coalesce(extract(epoch FROM now() - min(created_at)), 0)::float AS s"
        " FROM alert_deliveries WHERE email_id IS NULL AND NOT via_digest"
    )
    ungrouped = await waiting.fetchone()
    return {**row, "oldest_ungrouped_s": ungrouped["s"] if ungrouped else 0.0}


# -- history (pages, API, CSV) -------------------------------------------------------------


@dataclass(frozen=True)
class HistoryFilter:
    rule: str | None = None
    variant_id: int | None = None
    since: datetime | None = None
    until: datetime | None = None
    # 'pending' (not sent yet), 'sent', 'failed', or None for all.
    delivery: str | None = None
    search: str | None = None


_HISTORY_SQL = """
SELECT a.id, a.variant_id, a.rule, a.severity, a.digest_only, a.fired_at, a.figures,
       v.sku, concat_ws(' / ', v.product_title, nullif(v.variant_title, 'Default Title')) AS title,
       coalesce(v.deleted, true) AS product_deleted,
       coalesce(jsonb_agg(jsonb_build_object(
           'recipient', d.recipient,
           'state', CASE WHEN d.email_id IS NULL THEN 'waiting'
                         WHEN e.state = 'sending' AND e.attempts > 0 THEN 'retrying'
                         WHEN e.state = 'sending' THEN 'pending'
                         ELSE e.state END,
           'attempts', coalesce(e.attempts, 0),
           'error', e.last_error,
           'sent_at', e.sent_at) ORDER BY d.recipient) FILTER (WHERE d.alert_id IS NOT NULL),
           '[]'::jsonb) AS deliveries
  FROM alerts a
  LEFT JOIN variants v ON v.shop = a.shop AND v.variant_id = a.variant_id
  LEFT JOIN alert_deliveries d ON d.alert_id = a.id
  LEFT JOIN alert_emails e ON e.id = d.email_id
 WHERE a.shop = %(shop)s
   AND (%(rule)s::text IS NULL OR a.rule = %(rule)s)
   AND (%(variant)s::bigint IS NULL OR a.variant_id = %(variant)s)
   AND (%(since)s::timestamptz IS NULL OR a.fired_at >= %(since)s)
   AND (%(until)s::timestamptz IS NULL OR a.fired_at < %(until)s)
   AND (%(search)s::text IS NULL OR v.sku ILIKE %(search)s OR v.product_title ILIKE %(search)s)
   AND (%(delivery)s::text IS NULL OR EXISTS (
        SELECT 1 FROM alert_deliveries d2 LEFT JOIN alert_emails e2 ON e2.id = d2.email_id
         WHERE d2.alert_id = a.id AND CASE %(delivery)s
               WHEN 'failed' THEN e2.state = 'failed'
               WHEN 'sent' THEN e2.state = 'sent'
               ELSE d2.email_id IS NULL OR e2.state = 'sending' END))
 GROUP BY a.id, v.sku, v.product_title, v.variant_title, v.deleted
 ORDER BY a.fired_at DESC, a.id DESC
"""


def _history_params(shop: str, f: HistoryFilter) -> dict[str, Any]:
    search = None
    if f.search:
        escaped = f.search.replace("\\", "\\\\").replace("%", r"\%").replace("_", r"\_")
        search = f"%{escaped}%"
    return {
        "shop": shop,
        "rule": f.rule,
        "variant": f.variant_id,
        "since": f.since,
        "until": f.until,
        "delivery": f.delivery,
        "search": search,
    }


async def history(
    conn: DictConnection, shop: str, f: HistoryFilter, *, limit: int, offset: int = 0
) -> tuple[list[dict[str, Any]], int]:
    """A page of the shop's alerts, newest first, with each recipient's delivery; and how
    many match in all."""
    params = _history_params(shop, f)
    cur = await conn.execute(
        f"{_HISTORY_SQL} LIMIT %(limit)s OFFSET %(offset)s",
        {**params, "limit": limit, "offset": offset},
    )
    rows = list(await cur.fetchall())
    counted = await conn.execute(f"SELECT count(*) AS n FROM ({_HISTORY_SQL}) h", params)
    total = await counted.fetchone()
    return rows, int(total["n"]) if total else 0


async def history_cursor(conn: DictConnection, shop: str, f: HistoryFilter) -> Any:
    """The whole filtered history as a server-side cursor, for streamed CSV reports."""
    cur = conn.cursor(name=f"alerts_{shop}"[:60])
    await cur.execute(_HISTORY_SQL, _history_params(shop, f))
    return cur


async def recent(conn: DictConnection, shop: str, hours: int, limit: int) -> list[dict[str, Any]]:
    """Alerts of the last ``hours`` for the dashboard's banners, newest first."""
    cur = await conn.execute(
        "SELECT a.id, a.variant_id, a.rule, a.severity, a.fired_at, a.figures, v.sku,"
        " coalesce(v.deleted, true) AS product_deleted"
        " FROM alerts a LEFT JOIN variants v ON v.shop = a.shop AND v.variant_id = a.variant_id"
        " WHERE a.shop = %s AND a.fired_at > now() - make_interval(hours => %s)"
        " ORDER BY a.fired_at DESC, a.id DESC LIMIT %s",
        (shop, hours, limit),
    )
    return list(await cur.fetchall())
