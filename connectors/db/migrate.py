"""Versioned SQL migrations.

Files in ``migrations/`` are named ``NNNN_name.sql``, or come as a pair
``NNNN_name.plain.sql`` / ``NNNN_name.timescale.sql`` of which one is applied: the TimescaleDB
variant when the server offers the extension, the plain PostgreSQL one otherwise. Each version
runs in its own transaction under an advisory lock, so concurrent starts are safe.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import psycopg

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+?)(?:\.(plain|timescale))?\.sql$")
_LOCK_ID = 0x5707_C9A5


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path


def plan(timescale: bool, directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """The migrations to apply, in order, for a server with or without TimescaleDB."""
    wanted = "timescale" if timescale else "plain"
    chosen: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _NAME.match(path.name)
        if not match:
            raise ValueError(f"badly named migration {path.name}")
        version, name, variant = int(match[1]), match[2], match[3]
        if variant not in (None, wanted):
            continue
        if version in chosen:
            raise ValueError(f"two migrations share version {version:04d}")
        chosen[version] = Migration(version, name, path)
    return [chosen[v] for v in sorted(chosen)]


def timescale_available(conn: psycopg.Connection) -> bool:
    row = conn.execute(
        "SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'"
    ).fetchone()
    return row is not None


def migrate(database_url: str) -> list[int]:
    """Apply pending migrations; returns the versions applied now."""
    applied_now: list[int] = []
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_ID,))
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version integer PRIMARY KEY, name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {r[0] for r in conn.execute("SELECT version FROM schema_migrations")}
            for migration in plan(timescale_available(conn)):
                if migration.version in done:
                    continue
                with conn.transaction():
                    conn.execute(migration.path.read_text().encode())
                    conn.execute(
                        "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                        (migration.version, migration.path.name),
                    )
                log.info("applied migration %s", migration.path.name)
                applied_now.append(migration.version)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_ID,))
    return applied_now


def ensure_partitions(database_url: str, months_ahead: int = 3) -> None:
    """Roll monthly partitions forward; a no-op on TimescaleDB. Run daily by the worker."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        for parent in ("demand_ledger", "stock_history"):
            conn.execute(
                "SELECT stockpulse_ensure_partitions(%s, now()::date,"
                " (now() + make_interval(months => %s))::date)",
                (parent, months_ahead),
            )
