"""Shops: which ones Stockpulse serves, and installing one by hand.

A shop is served from its install until its uninstall (``uninstalled_at``). Every query that
means "the shops we serve" selects from :data:`ACTIVE_SHOPS`, so that rule is written once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from connectors.db.pool import DictConnection

# What Shopify accepts as a store's domain (and all we accept as one).
SHOP_DOMAIN = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9\-_]*\.myshopify\.com$")

# A subquery, for queries that need more of a shop than its domain: ``FROM {ACTIVE_SHOPS} s``.
ACTIVE_SHOPS = "(SELECT * FROM shops WHERE uninstalled_at IS NULL)"


async def active_shops(conn: DictConnection) -> list[str]:
    """Domains of the installed shops, in order."""
    cur = await conn.execute(f"SELECT domain FROM {ACTIVE_SHOPS} s ORDER BY domain")
    return [r["domain"] for r in await cur.fetchall()]


async def held_shops(conn: DictConnection) -> dict[str, datetime | None]:
    """Every shop whose data is held, with when it was installed (None: uninstalled; it stays
    until its shop/redact, which must still verify and apply)."""
    cur = await conn.execute(
        "SELECT domain, CASE WHEN uninstalled_at IS NULL THEN installed_at END AS installed_at"
        " FROM shops"
    )
    return {r["domain"]: r["installed_at"] for r in await cur.fetchall()}


async def shop_held(conn: DictConnection, shop: str) -> bool | None:
    """Whether ``shop`` is installed; None when no data of it is held."""
    cur = await conn.execute(
        "SELECT uninstalled_at IS NULL AS installed FROM shops WHERE domain = %s", (shop,)
    )
    row = await cur.fetchone()
    return None if row is None else bool(row["installed"])


async def get_shop(conn: DictConnection, shop: str) -> dict[str, Any] | None:
    """The shop's settings a page shows (installed or not: its data may still be there)."""
    cur = await conn.execute(
        "SELECT domain, name, timezone, currency FROM shops WHERE domain = %s", (shop,)
    )
    return await cur.fetchone()


# The zone if this PostgreSQL's tz database knows it, else NULL: Python's (which checked it)
# may be newer, and the database refuses a zone it does not know. A shop refused for that
# could not connect at all; it keeps the zone it has instead (UTC when new).
_KNOWN_ZONE = "(SELECT name FROM pg_timezone_names WHERE name = %(timezone)s LIMIT 1)"

# An install (again) is an install now: an uninstall triggered before it, applied before or
# after (the worker behind, or Shopify retrying one that failed), must not undo it. Without a
# time zone (a shop added by hand again, or one not known here), the one it has stays.
_INSTALL = (
    "INSERT INTO shops (domain, name, timezone)"
    f" VALUES (%(domain)s, %(name)s, coalesce({_KNOWN_ZONE}, 'UTC'))"
    " ON CONFLICT (domain) DO UPDATE SET name = coalesce(excluded.name, shops.name),"
    f" timezone = coalesce({_KNOWN_ZONE}, shops.timezone),"
    " uninstalled_at = NULL, installed_at = now()"
)


def install_shop(
    database_url: str, domain: str, *, name: str | None = None, timezone: str | None = None
) -> None:
    """Install (or reinstall) a shop by hand; the Shopify OAuth flow does this for real shops.
    A new shop without ``timezone`` gets UTC.

    Synchronous: its callers (the CLI, the stack runner, benchmarks and test fixtures) run
    before or beside any event loop, as migrations do."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(_INSTALL, {"domain": domain, "name": name, "timezone": timezone})


@dataclass(frozen=True)
class HeldShop:
    installed: bool
    timezone: str
    name: str | None
    connected: bool  # it reaches Shopify, which tells its time zone


def rename_shop(database_url: str, domain: str, *, name: str | None, timezone: str | None) -> None:
    """Change an installed shop's name and time zone by hand, leaving its install as it
    was: an uninstall triggered since still applies (an install's moment is when it was
    granted; a hand re-add moving it to now dropped a genuine uninstall, an outside test)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE shops SET name = coalesce(%(name)s, name),"
            f" timezone = coalesce({_KNOWN_ZONE}, timezone) WHERE domain = %(domain)s",
            {"domain": domain, "name": name, "timezone": timezone},
        )


def held_shop(database_url: str, domain: str) -> HeldShop | None:
    """What is held of ``domain`` before a hand install; None when nothing is."""
    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        row = conn.execute(
            "SELECT uninstalled_at IS NULL AS installed, timezone, name,"
            " EXISTS (SELECT 1 FROM shop_credentials c WHERE c.shop = s.domain) AS connected"
            " FROM shops s WHERE domain = %s",
            (domain,),
        ).fetchone()
    return None if row is None else HeldShop(**row)


async def install(
    conn: DictConnection,
    domain: str,
    *,
    name: str | None,
    timezone: str | None,
    currency: str | None,
) -> None:
    """Install (or reinstall) a shop with the time zone and currency Shopify reports; a zone
    not known here (None, or unknown to PostgreSQL) leaves the shop's own (UTC when new)."""
    await conn.execute(_INSTALL, {"domain": domain, "name": name, "timezone": timezone})
    await conn.execute("UPDATE shops SET currency = %s WHERE domain = %s", (currency, domain))


def has_orders(database_url: str, shop: str) -> bool:
    """Whether any order of the shop was ever stored (the demo store backfills only once)."""
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT 1 FROM order_lines WHERE shop = %s LIMIT 1", (shop,)).fetchone()
        return row is not None


async def sync_settings(
    conn: DictConnection,
    domain: str,
    *,
    name: str | None,
    timezone: str | None,
    currency: str | None,
) -> None:
    """Keep the shop's name, time zone and currency as Shopify reports them (never edited by
    hand); an uninstalled shop stays uninstalled, and a zone not known here changes nothing."""
    await conn.execute(
        "UPDATE shops SET name = coalesce(%(name)s, name),"
        f" timezone = coalesce({_KNOWN_ZONE}, timezone), currency = %(currency)s"
        " WHERE domain = %(domain)s",
        {"name": name, "timezone": timezone, "currency": currency, "domain": domain},
    )
