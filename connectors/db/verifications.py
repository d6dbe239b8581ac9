"""Email verification: whether an account receives mail at its address, and the single-use,
expiring links that prove it (made, stored hashed and spent as password resets are)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from connectors.db.accounts import digest, new_secret
from connectors.db.pool import DictConnection

LIFETIME = timedelta(hours=24)


async def create(conn: DictConnection, user_id: int) -> str:
    """A new link's token for the user; its value goes in the mail only."""
    token = new_secret()
    await conn.execute(
        "INSERT INTO email_verifications (token_hash, user_id, expires_at)"
        " VALUES (%s, %s, now() + %s)",
        (digest(token), user_id, LIFETIME),
    )
    # Spent and expired links of anyone go as new ones come: no sweeper needed.
    await conn.execute(
        "DELETE FROM email_verifications WHERE expires_at < now() - interval '1 day'"
    )
    return token


async def holder(conn: DictConnection, token: str) -> dict[str, Any] | None:
    """The account a live token is for (id, email, password_hash), without spending it."""
    cur = await conn.execute(
        "SELECT u.id, u.email, u.password_hash FROM email_verifications v"
        " JOIN users u ON u.id = v.user_id"
        " WHERE v.token_hash = %s AND v.used_at IS NULL AND v.expires_at > now()",
        (digest(token),),
    )
    return await cur.fetchone()


async def take(conn: DictConnection, token: str) -> int | None:
    """Spend a live token (single use) and mark its user's address verified; the user, or
    None when the token is unknown, used or expired."""
    cur = await conn.execute(
        "UPDATE email_verifications SET used_at = now()"
        " WHERE token_hash = %s AND used_at IS NULL AND expires_at > now() RETURNING user_id",
        (digest(token),),
    )
    row = await cur.fetchone()
    if row is None:
        return None
    await mark_verified(conn, int(row["user_id"]))
    return int(row["user_id"])


async def mark_verified(conn: DictConnection, user_id: int) -> bool:
    """Whether the address was unverified until now (the first proof keeps its time)."""
    cur = await conn.execute(
        "UPDATE users SET email_verified_at = now()"
        " WHERE id = %s AND email_verified_at IS NULL RETURNING id",
        (user_id,),
    )
    return await cur.fetchone() is not None
