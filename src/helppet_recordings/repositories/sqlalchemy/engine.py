"""Engines for the repository: thread-pool friendly defaults for PostgreSQL and SQLite."""

from __future__ import annotations

from typing import Any, Final

import sqlalchemy as sa
import sqlalchemy.event
import sqlalchemy.exc
import sqlalchemy.pool

from helppet_recordings.errors import MissingDependencyError

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_SQLITE_BUSY_TIMEOUT",
    "build_engine",
    "sqlite_begin_immediate",
]

DEFAULT_SQLITE_BUSY_TIMEOUT: Final = 10.0
"""Seconds a SQLite connection waits for a lock before giving up (``PRAGMA busy_timeout``)."""

DEFAULT_CONNECT_TIMEOUT: Final = 10
"""Seconds ``from_url`` lets a PostgreSQL connection attempt take before giving up."""


def build_engine(
    url: str | sa.URL,
    *,
    sqlite_busy_timeout: float = DEFAULT_SQLITE_BUSY_TIMEOUT,
    **engine_kwargs: Any,
) -> sa.Engine:
    """Return a new engine for ``url``, configured for a web server's thread pool.

    See :meth:`SqlAlchemyRepository.from_url
    <helppet_recordings.repositories.sqlalchemy.SqlAlchemyRepository.from_url>`
    for the defaults; ``engine_kwargs`` win over them. A driver that is not
    installed raises ``MissingDependencyError`` naming the ``postgres`` extra.
    """
    parsed = sa.make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    kwargs = dict(engine_kwargs)
    connect_args: dict[str, Any] = dict(kwargs.pop("connect_args", {}))
    backend = parsed.get_backend_name()
    in_memory = backend == "sqlite" and _sqlite_in_memory(parsed)
    if backend == "sqlite":
        connect_args.setdefault("check_same_thread", False)
        if in_memory:
            kwargs.setdefault("poolclass", sa.pool.StaticPool)
    elif backend == "postgresql":
        kwargs.setdefault("pool_pre_ping", True)
        if parsed.get_driver_name() == "psycopg" and "connect_timeout" not in parsed.query:
            connect_args.setdefault("connect_timeout", DEFAULT_CONNECT_TIMEOUT)
    try:
        engine = sa.create_engine(parsed, connect_args=connect_args, **kwargs)
    except sa.exc.NoSuchModuleError as exc:
        raise MissingDependencyError(parsed.drivername, "postgres") from exc
    except ModuleNotFoundError as exc:
        raise MissingDependencyError(exc.name or parsed.drivername, "postgres") from exc
    if backend == "sqlite":
        _configure_sqlite(engine, busy_timeout=sqlite_busy_timeout, wal=not in_memory)
    return engine


def sqlite_begin_immediate(connection: sa.Connection) -> None:
    """Take SQLite's write lock now, so what this transaction reads stays true until commit."""
    if not getattr(connection.connection.dbapi_connection, "in_transaction", False):
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _sqlite_in_memory(url: sa.URL) -> bool:
    database = url.database or ""
    return database in {"", ":memory:"} or url.query.get("mode") == "memory"


def _configure_sqlite(engine: sa.Engine, *, busy_timeout: float, wal: bool) -> None:
    """Set the pragmas every new SQLite connection needs."""
    timeout_ms = max(0, int(busy_timeout * 1000))

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {timeout_ms}")
            cursor.execute("PRAGMA foreign_keys = ON")
            if wal:
                cursor.execute("PRAGMA journal_mode = WAL")
                cursor.execute("PRAGMA synchronous = NORMAL")
        finally:
            cursor.close()
