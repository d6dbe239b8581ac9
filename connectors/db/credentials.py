"""Each shop's credentials, sealed at rest (connectors.crypto), and the secrets its webhooks
verify with."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from connectors.crypto import CannotOpen, Keyring
from connectors.db.pool import DictConnection

Mode = Literal["client_credentials", "authorization_code", "static"]
_SEALED = ("client_secret", "access_token", "refresh_token")


@dataclass(frozen=True)
class Credentials:
    shop: str
    mode: Mode
    client_id: str | None = None
    client_secret: str | None = None
    access_token: str | None = None
    access_expires_at: datetime | None = None
    refresh_token: str | None = None
    refresh_expires_at: datetime | None = None
    scopes: str | None = None
    admin_url: str | None = None


def _context(shop: str, column: str) -> str:
    return f"{shop}|{column}"


async def save(conn: DictConnection, keyring: Keyring, creds: Credentials) -> None:
    sealed = {
        column: None
        if value is None
        else keyring.seal(value.encode(), _context(creds.shop, column))
        for column in _SEALED
        for value in [getattr(creds, column)]
    }
    await conn.execute(
        """
        INSERT INTO shop_credentials (shop, mode, client_id, client_secret, access_token,
            access_expires_at, refresh_token, refresh_expires_at, scopes, admin_url)
        VALUES (%(shop)s, %(mode)s, %(client_id)s, %(client_secret)s, %(access_token)s,
            %(access_expires_at)s, %(refresh_token)s, %(refresh_expires_at)s, %(scopes)s,
            %(admin_url)s)
        ON CONFLICT (shop) DO UPDATE SET mode = excluded.mode, client_id = excluded.client_id,
            client_secret = excluded.client_secret, access_token = excluded.access_token,
            access_expires_at = excluded.access_expires_at,
            refresh_token = excluded.refresh_token,
            refresh_expires_at = excluded.refresh_expires_at, scopes = excluded.scopes,
            admin_url = excluded.admin_url, updated_at = now()
        """,
        {
            "shop": creds.shop,
            "mode": creds.mode,
            "client_id": creds.client_id,
            "access_expires_at": creds.access_expires_at,
            "refresh_expires_at": creds.refresh_expires_at,
            "scopes": creds.scopes,
            "admin_url": creds.admin_url,
            **sealed,
        },
    )


async def load(conn: DictConnection, keyring: Keyring, shop: str) -> Credentials | None:
    cur = await conn.execute("SELECT * FROM shop_credentials WHERE shop = %s", (shop,))
    row = await cur.fetchone()
    if row is None:
        return None
    opened = {
        column: None
        if row[column] is None
        else keyring.open(bytes(row[column]), _context(shop, column)).decode()
        for column in _SEALED
    }
    return Credentials(
        shop=shop,
        mode=row["mode"],
        client_id=row["client_id"],
        access_expires_at=row["access_expires_at"],
        refresh_expires_at=row["refresh_expires_at"],
        scopes=row["scopes"],
        admin_url=row["admin_url"],
        **opened,
    )


async def own_app_secrets(conn: DictConnection, keyring: Keyring) -> dict[str, bytes | None]:
    """The app secret of every shop connected through an app of its own, installed or not
    (an uninstalled shop's shop/redact is signed with it): its webhooks verify with that
    secret only. Shops missing here use this deployment's app. None: sealed under a key this
    process lacks (rotated by another, say); that shop's webhooks wait, the others do not."""
    cur = await conn.execute(
        "SELECT c.shop, c.client_secret FROM shop_credentials c"
        " WHERE c.mode IN ('client_credentials', 'static') AND c.client_secret IS NOT NULL"
    )
    secrets: dict[str, bytes | None] = {}
    for r in await cur.fetchall():
        try:
            secrets[r["shop"]] = keyring.open(
                bytes(r["client_secret"]), _context(r["shop"], "client_secret")
            )
        except CannotOpen:
            secrets[r["shop"]] = None
    return secrets


async def rotate(conn: DictConnection, keyring: Keyring) -> int:
    """Re-seal every value not under the newest key, in the caller's transaction; how many.
    A value no key opens fails the whole rotation (the caller's transaction rolls back)."""
    cur = await conn.execute(
        "SELECT shop, client_secret, access_token, refresh_token FROM shop_credentials"
        " ORDER BY shop FOR UPDATE"
    )
    resealed = 0
    for row in await cur.fetchall():
        changes = {}
        for column in _SEALED:
            value = row[column]
            if value is None or keyring.is_current(bytes(value)):
                continue
            context = _context(row["shop"], column)
            try:
                changes[column] = keyring.seal(keyring.open(bytes(value), context), context)
            except CannotOpen:
                raise CannotOpen(
                    f"{row['shop']} {column} opens under no key in the ring (a key dropped "
                    "before rotating?); nothing was re-sealed"
                ) from None
        if changes:
            assignments = ", ".join(f"{c} = %({c})s" for c in changes)
            await conn.execute(
                f"UPDATE shop_credentials SET {assignments} WHERE shop = %(shop)s",
                {**changes, "shop": row["shop"]},
            )
            resealed += len(changes)
    return resealed
