"""Users, their sessions, API tokens and shop roles, failed logins and password resets.

Only hashes of secrets are stored: a session cookie, an API token and a reset token are random
256-bit values handed to their holder once; the database keeps their SHA-256.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import psycopg

from connectors.db.pool import DictConnection

ROLES = ("owner", "viewer")


class EmailTaken(ValueError):
    pass


class LastOwner(ValueError):
    """The change would leave a shop without an owner, and so nobody could manage it."""


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


@dataclass(frozen=True)
class Caller:
    """Who is asking: a user, through a session (with the token its forms must carry) or an
    API token (perhaps read-only)."""

    user_id: int
    email: str
    via: str  # "session" or "token"
    read_only: bool = False
    csrf_token: str | None = None
    email_verified: bool = False


async def create_user(
    conn: DictConnection, email: str, password_hash: str, *, verified: bool = False
) -> int:
    """A new account; ``verified`` only for one the operator makes (they vouch for the
    address), never for a sign-up, whose address is a claim until its link is opened."""
    try:
        async with conn.transaction():
            cur = await conn.execute(
                "INSERT INTO users (email, password_hash, email_verified_at)"
                " VALUES (%s, %s, CASE WHEN %s THEN now() END) RETURNING id",
                (email.strip(), password_hash, verified),
            )
            row = await cur.fetchone()
    except psycopg.errors.UniqueViolation:
        raise EmailTaken(email) from None
    assert row is not None
    return int(row["id"])


async def user_by_email(conn: DictConnection, email: str) -> dict[str, Any] | None:
    cur = await conn.execute(
        "SELECT id, email, password_hash, email_verified_at FROM users"
        " WHERE lower(email) = lower(%s)",
        (email.strip(),),
    )
    return await cur.fetchone()


async def lock_account(conn: DictConnection, user_id: int) -> None:
    """Wait for any other transaction changing who may act as the user to commit: a reset
    (new password, sessions and tokens gone) against a login or a new token that began under
    the old password. Without it, an outside tester kept sessions and tokens made during a
    reset by racing it."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtext('stockpulse.account'), hashtext(%s))",
        (str(user_id),),
    )


async def password_hash_of(conn: DictConnection, user_id: int) -> str | None:
    cur = await conn.execute("SELECT password_hash FROM users WHERE id = %s", (user_id,))
    row = await cur.fetchone()
    return str(row["password_hash"]) if row else None


async def session_alive(conn: DictConnection, user_id: int, token: str) -> bool:
    caller = await session_caller(conn, token)
    return caller is not None and caller.user_id == user_id


async def forget_password_resets(conn: DictConnection, user_id: int) -> None:
    """Every reset link of the user stops working: after a reset, an older link (a forwarded
    or leaked mail) must not set the password again."""
    await conn.execute("DELETE FROM password_resets WHERE user_id = %s", (user_id,))


async def set_password(conn: DictConnection, user_id: int, password_hash: str) -> None:
    """A new password ends every session of the user (a reset must lock out whoever knew the
    old one)."""
    await conn.execute(
        "UPDATE users SET password_hash = %s WHERE id = %s", (password_hash, user_id)
    )
    await conn.execute("DELETE FROM user_sessions WHERE user_id = %s", (user_id,))


async def open_session(conn: DictConnection, user_id: int, lifetime: timedelta) -> str:
    """A new session (a login always gets a new one); its cookie value."""
    token = new_secret()
    await conn.execute(
        "INSERT INTO user_sessions (token_hash, user_id, csrf_token, expires_at)"
        " VALUES (%s, %s, %s, now() + %s)",
        (digest(token), user_id, new_secret(), lifetime),
    )
    # Expired sessions of anyone go as new ones come: no sweeper needed.
    await conn.execute("DELETE FROM user_sessions WHERE expires_at < now()")
    return token


async def session_caller(conn: DictConnection, token: str) -> Caller | None:
    cur = await conn.execute(
        "SELECT u.id, u.email, s.csrf_token, u.email_verified_at IS NOT NULL AS verified"
        " FROM user_sessions s JOIN users u ON u.id = s.user_id"
        " WHERE s.token_hash = %s AND s.expires_at > now()",
        (digest(token),),
    )
    row = await cur.fetchone()
    if row is None:
        return None
    return Caller(
        row["id"],
        row["email"],
        "session",
        csrf_token=row["csrf_token"],
        email_verified=row["verified"],
    )


async def close_session(conn: DictConnection, token: str) -> None:
    await conn.execute("DELETE FROM user_sessions WHERE token_hash = %s", (digest(token),))


async def create_api_token(
    conn: DictConnection,
    user_id: int,
    name: str,
    *,
    read_only: bool = False,
    token: str | None = None,
) -> str:
    """A new API token of the user (``token`` to register a given value, as the demo's
    ``STOCKPULSE_DEMO_API_TOKEN``); its value, shown once."""
    token = token or new_secret()
    await conn.execute(
        "INSERT INTO api_tokens (user_id, name, token_hash, read_only) VALUES (%s, %s, %s, %s)"
        " ON CONFLICT (token_hash) DO UPDATE SET user_id = excluded.user_id,"
        " name = excluded.name, read_only = excluded.read_only",
        (user_id, name, digest(token), read_only),
    )
    return token


async def token_caller(conn: DictConnection, token: str) -> Caller | None:
    cur = await conn.execute(
        "UPDATE api_tokens t SET last_used_at = now() FROM users u"
        " WHERE t.token_hash = %s AND u.id = t.user_id"
        " RETURNING u.id, u.email, t.read_only, u.email_verified_at IS NOT NULL AS verified",
        (digest(token),),
    )
    row = await cur.fetchone()
    if row is None:
        return None
    return Caller(
        row["id"],
        row["email"],
        "token",
        read_only=row["read_only"],
        email_verified=row["verified"],
    )


async def api_tokens(conn: DictConnection, user_id: int) -> list[dict[str, Any]]:
    cur = await conn.execute(
        "SELECT id, name, read_only, created_at, last_used_at FROM api_tokens"
        " WHERE user_id = %s ORDER BY created_at DESC, id DESC",
        (user_id,),
    )
    return list(await cur.fetchall())


async def revoke_api_token(conn: DictConnection, user_id: int, token_id: int) -> bool:
    """Whether the user had that token. The row goes, so ``token_caller`` refuses it from the
    next request on; another user's id is as unknown as a missing one."""
    cur = await conn.execute(
        "DELETE FROM api_tokens WHERE id = %s AND user_id = %s RETURNING id", (token_id, user_id)
    )
    return await cur.fetchone() is not None


async def revoke_all_api_tokens(conn: DictConnection, user_id: int) -> None:
    await conn.execute("DELETE FROM api_tokens WHERE user_id = %s", (user_id,))


async def add_member(conn: DictConnection, shop: str, user_id: int, role: str) -> None:
    """Make ``user_id`` a member of ``shop`` in ``role``, or change their role: LastOwner when
    that would leave the shop without an owner (`shops assign --role viewer` demoted the only
    one, which the API refuses: an outside test)."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}")
    if role != "owner":
        await ensure_another_owner(conn, shop, user_id)
    await conn.execute(
        "INSERT INTO shop_members (shop, user_id, role) VALUES (%s, %s, %s)"
        " ON CONFLICT (shop, user_id) DO UPDATE SET role = excluded.role",
        (shop, user_id, role),
    )


async def role_of(conn: DictConnection, user_id: int, shop: str) -> str | None:
    cur = await conn.execute(
        "SELECT role FROM shop_members WHERE user_id = %s AND shop = %s", (user_id, shop)
    )
    row = await cur.fetchone()
    return row["role"] if row else None


async def feeds_no_longer_allowed(
    conn: DictConnection, feeds: Sequence[tuple[str, bytes, int, str]]
) -> list[int]:
    """Which of ``feeds`` (how the caller signed in, the digest of its session cookie or API
    token, its user, the shop) no longer stand, by index: as :func:`session_caller` or
    :func:`token_caller` and :func:`role_of` would answer now."""
    cur = await conn.execute(
        "SELECT f.i - 1 AS index"
        " FROM unnest(%s::text[], %s::bytea[], %s::bigint[], %s::text[])"
        "   WITH ORDINALITY AS f(via, credential, user_id, shop, i)"
        " WHERE NOT EXISTS (SELECT 1 FROM shop_members m"
        "                    WHERE m.user_id = f.user_id AND m.shop = f.shop)"
        "    OR (f.via = 'session' AND NOT EXISTS (SELECT 1 FROM user_sessions s"
        "         WHERE s.token_hash = f.credential AND s.user_id = f.user_id"
        "           AND s.expires_at > now()))"
        "    OR (f.via = 'token' AND NOT EXISTS (SELECT 1 FROM api_tokens t"
        "         WHERE t.token_hash = f.credential AND t.user_id = f.user_id))"
        "    OR f.via NOT IN ('session', 'token')",
        tuple(list(column) for column in zip(*feeds, strict=True)) if feeds else ([], [], [], []),
    )
    return [int(r["index"]) for r in await cur.fetchall()]


async def shops_of(conn: DictConnection, user_id: int) -> list[dict[str, Any]]:
    """The installed shops the user may see, with their role, by name."""
    cur = await conn.execute(
        "SELECT s.domain, s.name, m.role FROM shop_members m JOIN shops s ON s.domain = m.shop"
        " WHERE m.user_id = %s AND s.uninstalled_at IS NULL ORDER BY coalesce(s.name, s.domain)",
        (user_id,),
    )
    return list(await cur.fetchall())


async def ensure_another_owner(conn: DictConnection, shop: str, user_id: int) -> None:
    """LastOwner when ``user_id`` is the shop's only owner. Locks the owners' rows until the
    transaction ends, so two owners removing each other at once cannot both succeed."""
    cur = await conn.execute(
        "SELECT user_id FROM shop_members WHERE shop = %s AND role = 'owner' FOR UPDATE", (shop,)
    )
    owners = {row["user_id"] for row in await cur.fetchall()}
    if owners == {user_id}:
        raise LastOwner(shop)


async def member_by_email(conn: DictConnection, shop: str, email: str) -> dict[str, Any] | None:
    """The member of ``shop`` with that address (``user_id``, ``email``, ``role``), else None.
    One query whether or not an account has the address: its time tells nothing."""
    cur = await conn.execute(
        "SELECT u.id AS user_id, u.email, m.role FROM users u"
        " JOIN shop_members m ON m.user_id = u.id AND m.shop = %s"
        " WHERE lower(u.email) = lower(%s)",
        (shop, email.strip()),
    )
    return await cur.fetchone()


async def change_role(conn: DictConnection, shop: str, user_id: int, role: str) -> bool:
    """Whether ``user_id`` was a member of ``shop`` (and now has ``role``): never adds one."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}")
    cur = await conn.execute(
        "UPDATE shop_members SET role = %s WHERE shop = %s AND user_id = %s RETURNING user_id",
        (role, shop, user_id),
    )
    return await cur.fetchone() is not None


async def remove_member(conn: DictConnection, shop: str, user_id: int) -> bool:
    """Whether the user was a member; LastOwner (nothing removed) for the only owner."""
    await ensure_another_owner(conn, shop, user_id)
    cur = await conn.execute(
        "DELETE FROM shop_members WHERE shop = %s AND user_id = %s RETURNING user_id",
        (shop, user_id),
    )
    return await cur.fetchone() is not None


async def members(conn: DictConnection, shop: str) -> list[dict[str, Any]]:
    cur = await conn.execute(
        "SELECT u.id AS user_id, u.email, m.role, m.created_at"
        " FROM shop_members m JOIN users u ON u.id = m.user_id"
        " WHERE m.shop = %s ORDER BY m.role, u.email",
        (shop,),
    )
    return list(await cur.fetchall())


async def take_turn(conn: DictConnection, keys: list[str]) -> None:
    """Wait for every other attempt on these rate-limit keys to commit (until this
    transaction ends): parallel wrong passwords would all read the count before any of
    them added to it, and 11 of 60 were checked where 5 are allowed. Keys are taken in the
    order given, which callers keep the same (account before address), so none deadlock."""
    for key in keys:
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (key,))


async def count_if_allowed(
    conn: DictConnection, limits: list[tuple[str, int]], window: timedelta
) -> bool:
    """Count one more event under each key, unless a key has had its allowed number within
    ``window``: then count nothing and answer False. The rows are login_failures' (a key is
    a counter), and parallel callers take turns (:func:`take_turn`)."""
    await take_turn(conn, [key for key, _ in limits])
    for key, allowed in limits:
        if await recent_login_failures(conn, key, window) >= allowed:
            return False
    await record_login_failure(conn, [key for key, _ in limits])
    return True


async def record_login_failure(conn: DictConnection, keys: list[str]) -> None:
    await conn.cursor().executemany(
        "INSERT INTO login_failures (key) VALUES (%s)", [(key,) for key in keys]
    )
    await conn.execute("DELETE FROM login_failures WHERE at < now() - interval '1 day'")


async def recent_login_failures(conn: DictConnection, key: str, window: timedelta) -> int:
    cur = await conn.execute(
        "SELECT count(*) AS n FROM login_failures WHERE key = %s AND at > now() - %s",
        (key, window),
    )
    row = await cur.fetchone()
    return int(row["n"]) if row else 0


async def clear_login_failures(conn: DictConnection, key: str) -> None:
    await conn.execute("DELETE FROM login_failures WHERE key = %s", (key,))


async def create_password_reset(conn: DictConnection, user_id: int, lifetime: timedelta) -> str:
    token = new_secret()
    await conn.execute(
        "INSERT INTO password_resets (token_hash, user_id, expires_at) VALUES (%s, %s, now() + %s)",
        (digest(token), user_id, lifetime),
    )
    return token


async def take_password_reset(conn: DictConnection, token: str) -> int | None:
    """The user a reset token is for, spending it (single use); None when unknown, used or
    expired."""
    cur = await conn.execute(
        "UPDATE password_resets SET used_at = now()"
        " WHERE token_hash = %s AND used_at IS NULL AND expires_at > now() RETURNING user_id",
        (digest(token),),
    )
    row = await cur.fetchone()
    return int(row["user_id"]) if row else None


async def reset_is_valid(conn: DictConnection, token: str) -> bool:
    cur = await conn.execute(
        "SELECT 1 FROM password_resets WHERE token_hash = %s AND used_at IS NULL"
        " AND expires_at > now()",
        (digest(token),),
    )
    return await cur.fetchone() is not None
