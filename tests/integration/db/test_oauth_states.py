"""The OAuth install flow's state nonces: single use, bound to their shop, stored digested."""

from __future__ import annotations

from connectors.db import oauth_states
from connectors.db.pool import DictConnection


async def test_a_state_is_spent_once_by_its_own_shop_and_is_not_kept_as_issued(
    conn: DictConnection, shop: str
) -> None:
    async with conn.transaction():
        state = await oauth_states.issue(conn, shop)
    cur = await conn.execute(
        "SELECT count(*) AS n FROM oauth_states WHERE state_digest = convert_to(%s, 'UTF8')"
        " OR encode(state_digest, 'escape') LIKE '%%' || %s || '%%'",
        (state, state),
    )
    row = await cur.fetchone()
    assert row is not None and row["n"] == 0, "the state is readable in the table"
    async with conn.transaction():
        assert not await oauth_states.spend(conn, state, "another-" + shop)
        assert await oauth_states.spend(conn, state, shop)
        assert not await oauth_states.spend(conn, state, shop)
        assert not await oauth_states.spend(conn, state + "x", shop)
