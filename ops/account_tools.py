"""Accounts from the command line and for the demo: users, shop roles and API tokens, written
with the same functions the web app uses."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from connectors.db import accounts, alerts, verifications
from connectors.db.pool import DictConnection
from connectors.passwords import hash_password, weakness

T = TypeVar("T")
DEMO_EMAIL = "demo@stockpulse.localhost"


def _run(database_url: str, work: Callable[[DictConnection], Awaitable[T]]) -> T:
    async def go() -> T:
        conn = await AsyncConnection.connect(database_url, row_factory=dict_row)
        try:
            result = await work(conn)
            await conn.commit()
            return result
        finally:
            await conn.close()

    return asyncio.run(go())


async def _user_id(conn: DictConnection, email: str) -> int:
    user = await accounts.user_by_email(conn, email)
    if user is None:
        raise LookupError(f"no account uses {email}")
    return int(user["id"])


def create_user(database_url: str, email: str, password: str) -> int:
    problem = weakness(password, email)
    if problem:
        raise ValueError(f"password too weak: {problem}")
    return _run(
        database_url,
        # The operator vouches for the address they type.
        lambda conn: accounts.create_user(conn, email, hash_password(password), verified=True),
    )


def assign(
    database_url: str, shop: str, email: str, role: str, *, unconfirmed_ok: bool = False
) -> None:
    """Make the account of ``email`` a member of ``shop``. An account that has not confirmed
    its address is refused unless ``unconfirmed_ok``: anyone may have signed up with the
    address before its owner (LookupError either way, saying why)."""

    async def work(conn: DictConnection) -> None:
        cur = await conn.execute(
            "SELECT 1 FROM shops WHERE domain = %s AND uninstalled_at IS NULL", (shop,)
        )
        if await cur.fetchone() is None:
            raise LookupError(f"{shop} is not installed")
        user = await accounts.user_by_email(conn, email)
        if user is None:
            raise LookupError(f"no account uses {email}")
        if user["email_verified_at"] is None and not unconfirmed_ok:
            raise LookupError(
                f"the account of {email} has not confirmed its address (anyone could have"
                " signed up with it): ask them to confirm it, or pass --unconfirmed-ok"
            )
        await accounts.add_member(conn, shop, int(user["id"]), role)

    _run(database_url, work)


def create_token(
    database_url: str, email: str, name: str, *, read_only: bool, token: str | None = None
) -> str:
    async def work(conn: DictConnection) -> str:
        user_id = await _user_id(conn, email)
        return await accounts.create_api_token(
            conn, user_id, name, read_only=read_only, token=token
        )

    return _run(database_url, work)


def ensure_demo_account(
    database_url: str, data_dir: Path, shop: str, api_token: str | None
) -> tuple[str, str]:
    """The demo account, owner of the demo shop: made once with a random password kept in
    ``data_dir`` (readable by its owner only); ``api_token`` (``STOCKPULSE_DEMO_API_TOKEN``)
    becomes one of its API tokens. Its email and password."""
    path = data_dir / "demo-login.json"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        login = {"email": DEMO_EMAIL, "password": "Demo-" + secrets.token_urlsafe(12)}
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(login, out)
    login = json.loads(path.read_text())

    async def work(conn: DictConnection) -> None:
        user = await accounts.user_by_email(conn, login["email"])
        if user is None:
            user_id = await accounts.create_user(
                conn, login["email"], hash_password(login["password"]), verified=True
            )
        else:
            user_id = int(user["id"])
            # Made before addresses were verified: still the operator's own account.
            await verifications.mark_verified(conn, user_id)
        await accounts.add_member(conn, shop, user_id, "owner")
        if api_token:
            await accounts.create_api_token(
                conn, user_id, "STOCKPULSE_DEMO_API_TOKEN", token=api_token
            )

    _run(database_url, work)
    return login["email"], login["password"]


DEMO_LOW_STOCK_THRESHOLD = 5


def ensure_demo_alerts(database_url: str, shop: str, recipient: str) -> list[str]:
    """The demo shop's alert defaults: a low-stock line of 5 units and immediate emails to
    ``recipient`` (``STOCKPULSE_DEMO_ALERT_TO``). Set once: what the merchant changes later
    in Settings stays. Returns who is emailed now (`up` printed the setting, not them)."""

    async def work(conn: DictConnection) -> list[str]:
        await conn.execute(
            "INSERT INTO shop_settings (shop, low_stock_threshold) VALUES (%s, %s)"
            " ON CONFLICT (shop) DO NOTHING",
            (shop, DEMO_LOW_STOCK_THRESHOLD),
        )
        cur = await conn.execute(
            "INSERT INTO alert_settings (shop, mode) VALUES (%s, 'immediate')"
            " ON CONFLICT (shop) DO NOTHING RETURNING shop",
            (shop,),
        )
        if await cur.fetchone() is not None:
            await alerts.set_recipients(conn, shop, [recipient.strip().lower()])
        return [r.email for r in await alerts.recipients(conn, shop) if r.active]

    return _run(database_url, work)


def bench_member(database_url: str, shop: str) -> str:
    """A throwaway account owning ``shop`` and an API token of it, for benchmarks that read
    the feed and the API as a merchant's script would."""
    import uuid

    email = f"bench-{uuid.uuid4().hex[:10]}@stockpulse.localhost"
    create_user(database_url, email, "Bench-" + secrets.token_urlsafe(16))
    assign(database_url, shop, email, "owner")
    return create_token(database_url, email, "benchmark", read_only=True)
