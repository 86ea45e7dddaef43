"""The package's Alembic migrations: where they live and how to run them without ``alembic.ini``."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Final

import sqlalchemy as sa

from helppet_recordings.errors import MissingDependencyError, RepositoryError
from helppet_recordings.repositories.sqlalchemy.schema import ALEMBIC_VERSION_TABLE

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = ["MIGRATIONS_DIR", "MIGRATION_LOCK", "alembic_config", "upgrade_to_head"]

MIGRATIONS_DIR: Final = Path(__file__).resolve().parents[2] / "migrations"
"""The package's Alembic script directory (``helppet_recordings/migrations``, in the wheel)."""

MIGRATION_LOCK: Final = threading.Lock()
"""Held around every migration this process runs.

Alembic keeps its running migration context in a module global, so one process
runs one migration at a time (across processes, ``env.py`` takes a database
lock). Take it before checking out the connection the migration runs on.
"""


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


def upgrade_to_head(connection: sa.Connection) -> None:
    """Run the package's migrations to head on ``connection``.

    The caller holds :data:`MIGRATION_LOCK` and owns the transaction;
    ``env.py`` takes the database-wide lock (an advisory lock on PostgreSQL,
    the write lock on SQLite).

    Alembic refusing to migrate becomes ``RepositoryError`` (``DATABASE_ERROR``),
    chained to its ``CommandError``; nothing is changed then. A database
    stamped with a revision the package does not know (migrated by a newer
    version) says so and lists it in ``details["revisions"]``.
    """
    try:
        from alembic import command  # noqa: PLC0415 - alembic is needed only here
        from alembic.util import CommandError  # noqa: PLC0415
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise MissingDependencyError("alembic", "sql") from exc
    config = alembic_config(connection)
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


def _unknown_revisions(connection: sa.Connection, config: Config) -> list[str]:
    """Return the revisions ``connection``'s database is at that the migrations do not hold."""
    from alembic.runtime.migration import MigrationContext  # noqa: PLC0415
    from alembic.script import ScriptDirectory  # noqa: PLC0415
    from alembic.util import CommandError  # noqa: PLC0415

    script = ScriptDirectory.from_config(config)
    context = MigrationContext.configure(connection, opts={"version_table": ALEMBIC_VERSION_TABLE})
    unknown = []
    for revision in sorted(context.get_current_heads()):
        try:
            known = script.get_revision(revision) is not None
        except CommandError:
            known = False
        if not known:
            unknown.append(revision)
    return unknown
