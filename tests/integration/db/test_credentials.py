"""Shop secrets at rest: sealed, bound to their row and column, readable across key rotation."""

from __future__ import annotations

import psycopg
import pytest

from connectors.crypto import CannotOpen, Keyring, generate_key
from connectors.db import credentials
from connectors.db.pool import DictConnection

TOKEN = "shpat_0123456789abcdef"
SECRET = "whsec-of-this-store"


def _creds(shop: str) -> credentials.Credentials:
    return credentials.Credentials(
        shop=shop, mode="static", access_token=TOKEN, client_secret=SECRET
    )


async def test_tokens_are_unreadable_in_the_database(
    conn: DictConnection, shop: str, database_url: str
) -> None:
    ring = Keyring.parse(generate_key())
    await credentials.save(conn, ring, _creds(shop))
    with psycopg.connect(database_url) as raw:
        row = raw.execute(
            "SELECT access_token, client_secret, shop_credentials::text FROM shop_credentials"
            " WHERE shop = %s",
            (shop,),
        ).fetchone()
    assert row is not None
    stored = bytes(row[0]) + bytes(row[1]) + row[2].encode()
    assert TOKEN.encode() not in stored and SECRET.encode() not in stored
    loaded = await credentials.load(conn, ring, shop)
    assert loaded is not None and loaded.access_token == TOKEN
    assert (await credentials.own_app_secrets(conn, ring))[shop] == SECRET.encode()
    with pytest.raises(CannotOpen):
        await credentials.load(conn, Keyring.parse(generate_key()), shop)
    # Under a key this process lacks (rotated by another process): that shop waits; the list
    # of every other shop's secrets is still read (it failed whole, and every webhook got 503).
    assert (await credentials.own_app_secrets(conn, Keyring.parse(generate_key())))[shop] is None


async def test_a_sealed_value_does_not_open_in_another_row(conn: DictConnection, shop: str) -> None:
    ring = Keyring.parse(generate_key())
    sealed = ring.seal(TOKEN.encode(), f"{shop}|access_token")
    with pytest.raises(CannotOpen):
        ring.open(sealed, f"{shop}|refresh_token")
    with pytest.raises(CannotOpen):
        ring.open(sealed[:-1] + bytes([sealed[-1] ^ 1]), f"{shop}|access_token")


async def test_rotation_keeps_old_rows_readable_and_reseals_them_under_the_newest_key(
    conn: DictConnection, shop: str
) -> None:
    # Rotation covers every row: leave only this test's, sealed with the old key.
    await conn.execute("DELETE FROM shop_credentials")
    old_key, new_key = generate_key(), generate_key()
    await credentials.save(conn, Keyring.parse(old_key), _creds(shop))
    with pytest.raises(CannotOpen, match="nothing was re-sealed"):
        async with conn.transaction():
            await credentials.rotate(conn, Keyring.parse(new_key))  # old key dropped too soon
    both = Keyring.parse(f"{new_key},{old_key}")
    loaded = await credentials.load(conn, both, shop)  # old rows open under the ring
    assert loaded is not None and loaded.access_token == TOKEN
    async with conn.transaction():
        assert await credentials.rotate(conn, both) >= 2
    async with conn.transaction():
        assert await credentials.rotate(conn, both) == 0  # nothing left under the old key
    only_new = await credentials.load(conn, Keyring.parse(new_key), shop)
    assert only_new is not None and only_new.client_secret == SECRET


async def test_a_secret_this_process_cannot_open_holds_up_its_shop_only(
    conn: DictConnection, shop: str, database_url: str
) -> None:
    """A key rotated by another process: one unopenable secret failed the directory's whole
    read, and every shop's webhooks got 503."""
    from connectors.db.pool import open_pool
    from connectors.db.shops import install_shop
    from web.shops import SecretUnavailable, ShopDirectory

    await credentials.save(conn, Keyring.parse(generate_key()), _creds(shop))
    await conn.commit()
    other = f"other-{shop}"
    install_shop(database_url, other)
    pool = await open_pool(database_url, max_size=2)
    try:
        directory = ShopDirectory(pool, 60.0, [b"app"], Keyring.parse(generate_key()))
        with pytest.raises(SecretUnavailable):
            await directory.cached_secrets(shop)
        assert await directory.cached_secrets(other) == [b"app"]
    finally:
        await pool.close()
