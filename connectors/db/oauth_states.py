"""Single-use ``state`` nonces of the OAuth install flow, stored as their digests."""

from __future__ import annotations

from connectors.db.accounts import digest, new_secret
from connectors.db.pool import DictConnection

STATE_TTL_S = 600


async def issue(conn: DictConnection, shop: str) -> str:
    state = new_secret()
    await conn.execute(
        "DELETE FROM oauth_states WHERE created_at < now() - make_interval(secs => %s)",
        (STATE_TTL_S * 6,),
    )
    await conn.execute(
        "INSERT INTO oauth_states (state_digest, shop) VALUES (%s, %s)", (digest(state), shop)
    )
    return state


async def spend(conn: DictConnection, state: str, shop: str) -> bool:
    """True once for a state issued to ``shop`` in the last ten minutes; never again."""
    cur = await conn.execute(
        "UPDATE oauth_states SET used_at = now() WHERE state_digest = %s AND shop = %s"
        " AND used_at IS NULL AND created_at > now() - make_interval(secs => %s)"
        " RETURNING 1",
        (digest(state), shop, STATE_TTL_S),
    )
    return await cur.fetchone() is not None
