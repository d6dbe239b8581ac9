"""Single-use ``state`` nonces of the OAuth install flow."""

from __future__ import annotations

import secrets

from connectors.db.pool import DictConnection

STATE_TTL_S = 600


async def issue(conn: DictConnection, shop: str) -> str:
    state = secrets.token_urlsafe(32)
    await conn.execute(
        "DELETE FROM oauth_states WHERE created_at < now() - make_interval(secs => %s)",
        (STATE_TTL_S * 6,),
    )
    await conn.execute("INSERT INTO oauth_states (state, shop) VALUES (%s, %s)", (state, shop))
    return state


async def spend(conn: DictConnection, state: str, shop: str) -> bool:
    """True once for a state issued to ``shop`` in the last ten minutes; never again."""
    cur = await conn.execute(
        "UPDATE oauth_states SET used_at = now() WHERE state = %s AND shop = %s"
        " AND used_at IS NULL AND created_at > now() - make_interval(secs => %s)"
        " RETURNING 1",
        (state, shop, STATE_TTL_S),
    )
    return await cur.fetchone() is not None
