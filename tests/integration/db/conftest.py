"""One real PostgreSQL per session for the connectors/db tests: no broker, no worker, no web.

Each test works in a shop of its own, so tests share the cluster without seeing each other.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from connectors.db.migrate import migrate
from connectors.db.pool import DictConnection
from connectors.db.shops import install_shop
from ops.embedded import LocalPostgres


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    data_dir = Path(tempfile.mkdtemp(prefix="stockpulse-db-"))
    postgres = LocalPostgres(data_dir / "pg", durable=False)
    postgres.start()
    try:
        migrate(postgres.url())
        yield postgres.url()
    finally:
        postgres.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture
def shop(database_url: str) -> str:
    domain = f"t{uuid.uuid4().hex[:12]}.myshopify.com"
    install_shop(database_url, domain)
    return domain


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[DictConnection]:
    from psycopg import AsyncConnection
    from psycopg.rows import dict_row

    # Autocommit: each test transaction is a real one (its own now()), not a savepoint.
    connection = await AsyncConnection.connect(database_url, row_factory=dict_row, autocommit=True)
    try:
        yield connection
    finally:
        await connection.close()
