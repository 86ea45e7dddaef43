"""Races between migrations on PostgreSQL: a database's defaults, sessions waiting for the lock."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

__all__ = ["set_database_default", "wait_for_lock_waiters"]

_WAIT_SECONDS = 60.0


def set_database_default(url: str, setting: str, value: str) -> None:
    """``ALTER DATABASE ... SET setting = value`` for the database at ``url`` (new sessions)."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as connection:
            quote = connection.dialect.identifier_preparer.quote
            name = quote(engine.url.database or "")
            connection.execute(sa.text(f"ALTER DATABASE {name} SET {quote(setting)} = '{value}'"))
        with engine.connect() as connection:
            shown = connection.execute(sa.text(f"SHOW {quote(setting)}")).scalar_one()
        assert shown == value, f"{setting} is {shown!r} in a new session, not {value!r}"
    finally:
        engine.dispose()


def wait_for_lock_waiters(engine: sa.Engine, count: int) -> None:
    """Return once ``count`` PostgreSQL sessions wait for an advisory lock (the migration's)."""
    waiting = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
    deadline = time.monotonic() + _WAIT_SECONDS
    while time.monotonic() < deadline:
        with engine.connect() as connection:
            if connection.execute(sa.text(waiting)).scalar_one() >= count:
                return
        time.sleep(0.05)
    pytest.fail(f"{count} migrations never waited for the lock")
