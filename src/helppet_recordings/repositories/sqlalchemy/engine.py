"""Engines for the repository: thread-pool friendly defaults for PostgreSQL and SQLite.

The pool defaults fit one web server process whose blocking calls run in a
thread pool (a uvicorn worker: AnyIO's 40 threads): each thread holds at most
one connection at a time, so ``DEFAULT_POOL_SIZE`` connections serve it
without ever opening one per request. ``docs/deployment.md`` says how to size
them for several workers and why pre-ping is off.

Every engine built here hides the statements' parameters from SQLAlchemy's
statement log and errors (``hide_parameters=True``): they hold personal
content. (The repository's own errors hold none, whatever the engine.)
"""

from __future__ import annotations

from typing import Any, Final
from urllib.parse import quote_plus

import sqlalchemy as sa
import sqlalchemy.event
import sqlalchemy.exc
import sqlalchemy.pool

from helppet_recordings.errors import MissingDependencyError

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_MAX_OVERFLOW",
    "DEFAULT_POOL_RECYCLE",
    "DEFAULT_POOL_SIZE",
    "DEFAULT_SQLITE_BUSY_TIMEOUT",
    "build_engine",
    "shown_url",
    "sqlite_begin_immediate",
]

DEFAULT_SQLITE_BUSY_TIMEOUT: Final = 10.0
"""Seconds a SQLite connection waits for a lock before giving up (``PRAGMA busy_timeout``)."""

DEFAULT_CONNECT_TIMEOUT: Final = 10
"""Seconds ``from_url`` lets a PostgreSQL connection attempt take before giving up."""

DEFAULT_POOL_SIZE: Final = 40
"""Connections the pool keeps open: AnyIO's default thread pool size (a uvicorn worker's)."""

DEFAULT_MAX_OVERFLOW: Final = 10
"""Connections the pool may open beyond ``DEFAULT_POOL_SIZE`` (closed again when returned)."""

DEFAULT_POOL_RECYCLE: Final = 1800
"""Seconds after which a PostgreSQL connection is replaced at its next checkout.

Instead of a ping on every checkout: it retires connections before a server,
proxy or firewall idle limit drops them.
"""


_SECRET_QUERY_WORDS: Final = ("password", "passwd", "pwd", "secret", "token")
"""A query key holding one of these (``password``, ``sslpassword``, ...) has a secret value."""


def shown_url(url: sa.URL) -> str:
    """Render ``url`` for a report: the password and secret query values as ``***``.

    ``render_as_string(hide_password=True)`` masks only the password in the
    user part; libpq also takes one in the query (``?password=``,
    ``?sslpassword=``).
    """
    shown = url.set(query={}).render_as_string(hide_password=True)
    if not url.query:
        return shown
    pairs = []
    for key in sorted(url.query):
        values = url.query[key]
        secret = any(word in key.lower() for word in _SECRET_QUERY_WORDS)
        for value in (values,) if isinstance(values, str) else values:
            pairs.append(f"{quote_plus(key)}={'***' if secret else quote_plus(value)}")
    return shown + "?" + "&".join(pairs)


def build_engine(
    url: str | sa.URL,
    *,
    sqlite_busy_timeout: float = DEFAULT_SQLITE_BUSY_TIMEOUT,
    pool_size: int = DEFAULT_POOL_SIZE,
    max_overflow: int = DEFAULT_MAX_OVERFLOW,
    pool_pre_ping: bool = False,
    pool_recycle: float | None = None,
    hide_parameters: bool = True,
    **engine_kwargs: Any,
) -> sa.Engine:
    """Return a new engine for ``url``, configured for a web server's thread pool.

    See :meth:`SqlAlchemyRepository.from_url
    <helppet_recordings.repositories.sqlalchemy.SqlAlchemyRepository.from_url>`
    for the defaults; ``engine_kwargs`` win over them (on SQLite,
    ``connect_args={"timeout": seconds}`` over ``sqlite_busy_timeout``).

    ``hide_parameters`` (default True) keeps the statement's values out of
    SQLAlchemy's statement log (``echo``, the ``sqlalchemy.engine`` logger at
    INFO) and out of SQLAlchemy's errors outside the repository: they hold
    original filenames, transcripts and recording metadata. Pass False only
    where no log is kept. The repository strips the values from its own
    errors either way.
    psycopg missing raises ``MissingDependencyError`` naming the ``postgres``
    extra; another driver that is not installed, SQLAlchemy's own error.
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
    kwargs["pool_pre_ping"] = pool_pre_ping
    kwargs["hide_parameters"] = hide_parameters
    poolclass = kwargs.get("poolclass")
    if poolclass is None or issubclass(poolclass, sa.pool.QueuePool):
        kwargs["pool_size"] = pool_size
        kwargs["max_overflow"] = max_overflow
    if pool_recycle is not None:
        kwargs["pool_recycle"] = pool_recycle
    elif backend == "postgresql":
        kwargs["pool_recycle"] = DEFAULT_POOL_RECYCLE
    if (
        backend == "postgresql"
        and parsed.get_driver_name() == "psycopg"
        and "connect_timeout" not in parsed.query
    ):
        connect_args.setdefault("connect_timeout", DEFAULT_CONNECT_TIMEOUT)
    try:
        engine = sa.create_engine(parsed, connect_args=connect_args, **kwargs)
    except (sa.exc.NoSuchModuleError, ModuleNotFoundError) as exc:
        if backend == "postgresql" and parsed.get_driver_name() == "psycopg":
            raise MissingDependencyError("psycopg", "postgres") from exc
        raise  # another database or driver: no extra of this package installs it
    if backend == "sqlite":
        # sqlite3's own ``timeout`` (seconds), given in connect_args, wins over the default
        busy_timeout = float(connect_args.get("timeout", sqlite_busy_timeout))
        _configure_sqlite(engine, busy_timeout=busy_timeout, wal=not in_memory)
    return engine


def sqlite_begin_immediate(connection: sa.Connection) -> None:
    """Take SQLite's write lock now, so what this transaction reads stays true until commit."""
    if not getattr(connection.connection.dbapi_connection, "in_transaction", False):
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _sqlite_in_memory(url: sa.URL) -> bool:
    database = url.database or ""
    return (
        database in {"", ":memory:"}
        or database.startswith("file::memory:")  # a URI filename (``?uri=true``)
        or url.query.get("mode") == "memory"
    )


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
