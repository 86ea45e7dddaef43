"""The package's Alembic migrations: where they live and how to run them without ``alembic.ini``."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Final

import attrs
import sqlalchemy as sa

from helppet_recordings.errors import (
    MissingDependencyError,
    RepositoryError,
    RepositoryUnavailableError,
)
from helppet_recordings.repositories.sqlalchemy._redaction import sqlstate_of
from helppet_recordings.repositories.sqlalchemy.engine import sqlite_begin_immediate
from helppet_recordings.repositories.sqlalchemy.schema import ALEMBIC_VERSION_TABLE, metadata

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = [
    "MIGRATIONS_DIR",
    "MIGRATION_LOCK",
    "SchemaUpgrade",
    "alembic_config",
    "lock_for_migration",
    "migration_running",
    "migration_transaction",
    "upgrade_to_head",
]

MIGRATIONS_DIR: Final = Path(__file__).resolve().parents[2] / "migrations"
"""The package's Alembic script directory (``helppet_recordings/migrations``, in the wheel)."""

MIGRATION_LOCK: Final = threading.Lock()
"""Held around every migration this process runs.

Alembic keeps its running migration context in a module global, so one process
runs one migration at a time (across processes, :func:`lock_for_migration`
takes a database lock). Take it before checking out the connection the
migration runs on.
"""

# Any constant works; it only has to be the same in every process that migrates.
_ADVISORY_LOCK_KEY: Final = 0x4850_5245_4344  # "HPRECD"

# A wait for the lock cut short: lock_timeout; statement_timeout (or a cancel).
_GAVE_UP_WAITING: Final = frozenset({"55P03", "57014"})
_GAVE_UP_RETRY_AFTER: Final = 1


@attrs.frozen
class SchemaUpgrade:
    """What one upgrade did: the revisions the database was at before it, and after.

    Both are read inside the migration's transaction, under the migration
    lock, so when several processes migrate at once only the one that
    applied the migrations reports a change; the others find ``before`` at
    head. Empty ``before``: the database had no schema.
    """

    before: tuple[str, ...]
    after: tuple[str, ...]

    @property
    def changed(self) -> bool:
        """Whether this upgrade applied any migration."""
        return self.before != self.after


def alembic_config(connection: sa.Connection | None = None, *, url: str | None = None) -> Config:
    """Return an Alembic ``Config`` for the package's migrations; no ``alembic.ini`` needed.

    Pass an open ``connection`` (migrations then run on it, inside its
    transaction) or a ``url`` (for ``alembic.command`` functions that
    connect themselves, and for offline SQL generation). The version table
    is ``helppet_recordings_alembic_version``, so it never collides with a
    host application's ``alembic_version``.
    """
    try:
        from alembic.config import Config  # noqa: PLC0415 - alembic is needed only here
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise MissingDependencyError("alembic", "sql") from exc
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["connection"] = connection
    return config


@contextlib.contextmanager
def migration_transaction(engine: sa.Engine) -> Iterator[sa.Connection]:
    """Yield a connection in a new transaction for one migration; commit it at the end.

    On PostgreSQL the transaction runs at ``READ COMMITTED``, whatever the
    default isolation of the server, database, role or engine. Under
    ``REPEATABLE READ`` or ``SERIALIZABLE`` the statement that waits for the
    migration lock would fix the transaction's snapshot, so a migration that
    waited for another would not see the tables the other committed, and
    create them again (``DuplicateTable``). At ``READ COMMITTED`` each
    statement after the lock sees them. On SQLite, a plain transaction
    (:func:`lock_for_migration` makes it ``BEGIN IMMEDIATE``).
    """
    with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            # Set before the transaction begins: the driver then opens it with
            # BEGIN ISOLATION LEVEL READ COMMITTED (nothing kept by the session, so through
            # PgBouncer too, and before any statement a host's "begin" listener runs), and
            # the pool puts the connection's own level back when it is returned.
            connection.execution_options(isolation_level="READ COMMITTED")
        with connection.begin():
            yield connection


def lock_for_migration(connection: sa.Connection) -> None:
    """Take the database-wide migration lock until ``connection``'s transaction ends.

    An advisory lock on PostgreSQL; on SQLite the write lock (``BEGIN
    IMMEDIATE``, unless the connection already has a transaction open);
    nothing on other databases. Every migration takes it (``env.py`` does),
    so a second one waits here and then reads what the first committed.
    Taking it again in the same transaction returns at once.

    On PostgreSQL that needs a ``READ COMMITTED`` transaction
    (:func:`migration_transaction` begins one): in a snapshot isolation, what
    the transaction reads after waiting is what it would have read before.
    """
    if connection.dialect.name == "postgresql":
        connection.execute(
            sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_LOCK_KEY}
        )
    elif connection.dialect.name == "sqlite":
        sqlite_begin_immediate(connection)


def migration_running(connection: sa.Connection) -> bool:
    """Whether another session holds the migration lock now: a migration is running.

    PostgreSQL only (its ``pg_locks``, readable by every role); False on
    other databases, where it cannot be told.
    """
    if connection.dialect.name != "postgresql":
        return False
    # A bigint advisory key shows as its high half in classid, its low half in objid.
    held = sa.text(
        "SELECT EXISTS (SELECT FROM pg_locks WHERE locktype = 'advisory' AND granted "
        "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
        "AND classid = CAST(:high AS oid) AND objid = CAST(:low AS oid) AND objsubid = 1 "
        "AND pid <> pg_backend_pid())"
    )
    key = {"high": _ADVISORY_LOCK_KEY >> 32, "low": _ADVISORY_LOCK_KEY & 0xFFFF_FFFF}
    return bool(connection.execute(held, key).scalar())


def _take_migration_lock(connection: sa.Connection) -> None:
    """Take the migration lock; a wait a timeout cut short says that another migration runs."""
    try:
        lock_for_migration(connection)
    except sa.exc.DBAPIError as exc:
        state = sqlstate_of(exc.orig)
        if connection.dialect.name != "postgresql" or state not in _GAVE_UP_WAITING:
            raise
        raise RepositoryUnavailableError(
            "Another migration of this database is running, and this one stopped waiting "
            "for its lock (lock_timeout or statement_timeout): run it again once that one "
            "has finished",
            retry_after=_GAVE_UP_RETRY_AFTER,
            operation="create_schema",
            reason=f"{type(exc.orig).__name__} ({state})",
        ) from exc


def upgrade_to_head(connection: sa.Connection) -> SchemaUpgrade:
    """Run the package's migrations to head on ``connection``; return what changed.

    The caller holds :data:`MIGRATION_LOCK` and owns the transaction (begun
    by :func:`migration_transaction`); the database-wide lock
    (:func:`lock_for_migration`) is taken first, so what is read about the
    schema holds until the transaction ends, and the revisions before and
    after are this upgrade's own.

    Alembic refusing to migrate becomes ``RepositoryError`` (``DATABASE_ERROR``),
    chained to its ``CommandError``; nothing is changed then. A database
    stamped with a revision the package does not know (migrated by a newer
    version) says so and lists it in ``details["revisions"]``. A database
    that holds the package's tables but records no revision (they were made
    by ``metadata.create_all()`` or by hand) is refused too, with the tables
    in ``details["tables"]``: the migrations would create them again.

    A wait for the lock that PostgreSQL's ``lock_timeout`` or
    ``statement_timeout`` cut short is ``RepositoryUnavailableError`` saying
    that another migration is running (``retry_after`` 1 s).
    """
    try:
        from alembic import command  # noqa: PLC0415 - alembic is needed only here
        from alembic.util import CommandError  # noqa: PLC0415
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise MissingDependencyError("alembic", "sql") from exc
    config = alembic_config(connection)
    _take_migration_lock(connection)
    before = _current_revisions(connection)
    if not before:
        _refuse_tables_without_history(connection, config)
    try:
        command.upgrade(config, "head")
    except CommandError as exc:
        unknown = _unknown_revisions(connection, config)
        if unknown:
            raise RepositoryError(
                f"The database is at revision {', '.join(unknown)}, which this version of the "
                "package does not know: upgrade helppet-recordings to the version that "
                "migrated it",
                operation="create_schema",
                reason=type(exc).__name__,
                revisions=unknown,
            ) from exc
        raise RepositoryError(
            "The database's schema revisions cannot be migrated",
            operation="create_schema",
            reason=type(exc).__name__,
        ) from exc
    return SchemaUpgrade(before=tuple(before), after=tuple(_current_revisions(connection)))


def _current_revisions(connection: sa.Connection) -> list[str]:
    """Return the revisions ``connection``'s database records; empty when it records none."""
    from alembic.runtime.migration import MigrationContext  # noqa: PLC0415

    context = MigrationContext.configure(connection, opts={"version_table": ALEMBIC_VERSION_TABLE})
    return sorted(context.get_current_heads())


def _refuse_tables_without_history(connection: sa.Connection, config: Config) -> None:
    """Raise ``RepositoryError`` if the package's tables exist though no revision is recorded."""
    from alembic.script import ScriptDirectory  # noqa: PLC0415

    present = sorted(set(sa.inspect(connection).get_table_names()) & set(metadata.tables))
    if not present:
        return
    head = ", ".join(ScriptDirectory.from_config(config).get_heads())
    raise RepositoryError(
        f"The database holds {', '.join(present)} but no migration history (no revision in "
        f"{ALEMBIC_VERSION_TABLE}): the tables were not made by the package's migrations, "
        "which would create them again. Adopt them by stamping the revision they match, then "
        f"migrate: for this version's schema (metadata.create_all()), revision {head}, "
        f'command.stamp(alembic_config(url=...), "{head}"); see docs/database.md',
        operation="create_schema",
        tables=present,
        version_table=ALEMBIC_VERSION_TABLE,
    )


def _unknown_revisions(connection: sa.Connection, config: Config) -> list[str]:
    """Return the revisions ``connection``'s database is at that the migrations do not hold."""
    from alembic.script import ScriptDirectory  # noqa: PLC0415
    from alembic.util import CommandError  # noqa: PLC0415

    script = ScriptDirectory.from_config(config)
    unknown = []
    for revision in _current_revisions(connection):
        try:
            known = script.get_revision(revision) is not None
        except CommandError:
            known = False
        if not known:
            unknown.append(revision)
    return unknown
