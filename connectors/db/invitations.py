"""Invitations to a shop: a random single-use token mailed as a link (only its SHA-256 stored),
valid for a week, spent when an account that has confirmed the invited address accepts it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from connectors.db.accounts import ROLES, digest, new_secret
from connectors.db.pool import DictConnection

LIFETIME = timedelta(days=7)


async def create(
    conn: DictConnection, shop: str, email: str, role: str, invited_by: int
) -> tuple[int, str]:
    """A new invitation (its id, and its token, shown only in the mail). Inviting an address
    again replaces its pending invitation: one live link per person and shop."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}")
    await withdraw_pending(conn, shop, email)
    token = new_secret()
    cur = await conn.execute(
        "INSERT INTO shop_invitations (token_hash, shop, email, role, invited_by, expires_at)"
        " VALUES (%s, %s, %s, %s, %s, now() + %s) RETURNING id",
        (digest(token), shop, email.strip(), role, invited_by, LIFETIME),
    )
    row = await cur.fetchone()
    assert row is not None
    return int(row["id"]), token


async def withdraw_pending(conn: DictConnection, shop: str, email: str) -> None:
    """Drop the address's pending invitation to the shop: a newer invitation replaces it, and
    a member's role changed since must not be undone by accepting it."""
    await conn.execute(
        "DELETE FROM shop_invitations WHERE shop = %s AND lower(email) = lower(%s)"
        " AND accepted_at IS NULL",
        (shop, email.strip()),
    )


async def find(conn: DictConnection, token: str) -> dict[str, Any] | None:
    """A live invitation (not used, not expired, its shop still installed) with its shop's
    name; None otherwise."""
    cur = await conn.execute(
        "SELECT i.id, i.shop, i.email, i.role, i.expires_at, s.name AS shop_name"
        " FROM shop_invitations i JOIN shops s ON s.domain = i.shop"
        " WHERE i.token_hash = %s AND i.accepted_at IS NULL AND i.expires_at > now()"
        " AND s.uninstalled_at IS NULL",
        (digest(token),),
    )
    return await cur.fetchone()


async def for_another(conn: DictConnection, token: str, email: str) -> str | None:
    """The address a live invitation is for, when it is not ``email`` (compared as
    :func:`accept` compares them); None otherwise."""
    cur = await conn.execute(
        "SELECT i.email FROM shop_invitations i JOIN shops s ON s.domain = i.shop"
        " WHERE i.token_hash = %s AND i.accepted_at IS NULL AND i.expires_at > now()"
        " AND s.uninstalled_at IS NULL AND lower(i.email) <> lower(%s)",
        (digest(token), email),
    )
    row = await cur.fetchone()
    return row["email"] if row else None


async def accept(conn: DictConnection, token: str, user_id: int) -> dict[str, Any] | None:
    """Spend a live invitation for ``user_id`` and make them a member; the shop and role, or
    None when the token is unknown, used or expired, or the account is not the invited
    address's, proved: a forwarded or leaked link must not make any account that opens it a
    member (an owner, even), and an account only claims its address until it is verified."""
    cur = await conn.execute(
        "UPDATE shop_invitations i SET accepted_at = now(), accepted_by = u.id"
        " FROM shops s, users u"
        " WHERE i.token_hash = %s AND i.accepted_at IS NULL AND i.expires_at > now()"
        " AND s.domain = i.shop AND s.uninstalled_at IS NULL"
        " AND u.id = %s AND lower(u.email) = lower(i.email) AND u.email_verified_at IS NOT NULL"
        " RETURNING i.shop, i.role",
        (digest(token), user_id),
    )
    row = await cur.fetchone()
    if row is None:
        return None
    # An invitation never demotes: an owner who follows a viewer's link stays an owner.
    await conn.execute(
        "INSERT INTO shop_members (shop, user_id, role) VALUES (%s, %s, %s)"
        " ON CONFLICT (shop, user_id) DO UPDATE SET role = excluded.role"
        " WHERE excluded.role = 'owner'",
        (row["shop"], user_id, row["role"]),
    )
    return dict(row)


async def pending(conn: DictConnection, shop: str) -> list[dict[str, Any]]:
    cur = await conn.execute(
        "SELECT i.id, i.email, i.role, i.created_at, i.expires_at, u.email AS invited_by"
        " FROM shop_invitations i LEFT JOIN users u ON u.id = i.invited_by"
        " WHERE i.shop = %s AND i.accepted_at IS NULL AND i.expires_at > now()"
        " ORDER BY i.created_at DESC",
        (shop,),
    )
    return list(await cur.fetchall())


async def cancel(conn: DictConnection, shop: str, invitation_id: int) -> bool:
    cur = await conn.execute(
        "DELETE FROM shop_invitations WHERE id = %s AND shop = %s AND accepted_at IS NULL"
        " RETURNING id",
        (invitation_id, shop),
    )
    return await cur.fetchone() is not None
