"""Database checks: ``database.reachable`` and ``database.migrations``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from helppet_recordings.cli._database import (
    current_revisions,
    head_revisions,
    known_revision,
    missing_sqlite_file,
    opening_only,
    shown_url,
)
from helppet_recordings.cli.doctor._common import _finding, _first_line
from helppet_recordings.cli.findings import Finding, Status
from helppet_recordings.environment import DeploymentSettings, build_repository
from helppet_recordings.errors import MissingDependencyError

if TYPE_CHECKING:
    import sqlalchemy as sa


def check_database(environment: DeploymentSettings) -> list[Finding]:
    """Check that the database answers and is at the migrations' head revision."""
    not_checked = _finding(
        "database.migrations", Status.WARN, "not checked: the database is not reachable"
    )
    try:
        # a file deleted after the look below stays deleted: connecting cannot create it
        repository = build_repository(opening_only(environment))
    except MissingDependencyError as exc:
        return [_finding("database.reachable", Status.FAIL, exc.message), not_checked]
    import sqlalchemy as sa  # noqa: PLC0415 - present: build_repository needed it

    engine = repository.engine
    url = sa.make_url(environment.database_url)  # as given: build_repository parsed it
    shown = shown_url(url)
    try:
        missing = missing_sqlite_file(url)
        if missing is not None:
            return [
                _finding(
                    "database.reachable",
                    Status.FAIL,
                    f"the SQLite database file {missing} does not exist",
                    "run `helppet-recordings migrate` to create it, or fix DATABASE_URL",
                ),
                not_checked,
            ]
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
            reachable = _finding("database.reachable", Status.OK, f"{shown} answers")
            return [reachable, _check_revision(connection)]
    except sa.exc.SQLAlchemyError as exc:
        cause = exc.orig if isinstance(exc, sa.exc.DBAPIError) and exc.orig else exc
        return [
            _finding(
                "database.reachable",
                Status.FAIL,
                f"cannot use {shown}: {_first_line(cause)}",
                "check DATABASE_URL (host, port, database, user, password) and that the "
                "server runs and accepts connections from this host",
            ),
            not_checked,
        ]
    finally:
        repository.close()


def _check_revision(connection: sa.Connection) -> Finding:
    import sqlalchemy as sa  # noqa: PLC0415

    from helppet_recordings.repositories.sqlalchemy import (  # noqa: PLC0415
        ALEMBIC_VERSION_TABLE,
        RECORDINGS_TABLE_NAME,
    )

    heads = head_revisions()
    current = current_revisions(connection)
    head_text = ", ".join(heads)
    if current == heads:
        return _finding(
            "database.migrations", Status.OK, f"the schema is at the head revision ({head_text})"
        )
    if not current:
        if sa.inspect(connection).has_table(RECORDINGS_TABLE_NAME):
            return _finding(
                "database.migrations",
                Status.WARN,
                f"a {RECORDINGS_TABLE_NAME} table exists but no revision is recorded in "
                f"{ALEMBIC_VERSION_TABLE}: doctor cannot tell whether it is current",
                "if the host application's own migrations manage the table, check them; "
                "otherwise stamp the revision the tables match (docs/database.md), then run "
                "`helppet-recordings migrate`",
            )
        return _behind(connection, "the database has no recordings schema")
    current_text = ", ".join(current)
    if not all(known_revision(revision) for revision in current):
        return _finding(
            "database.migrations",
            Status.FAIL,
            f"the database is at revision {current_text}, which this version of the "
            "package does not know",
            "upgrade helppet-recordings to the version that migrated this database, or "
            "check that DATABASE_URL names this deployment's database",
        )
    return _behind(
        connection, f"the schema is at {current_text}, behind the head revision ({head_text})"
    )


def _behind(connection: sa.Connection, message: str) -> Finding:
    """Report a schema short of head: run migrate, or wait for the migration running now."""
    from helppet_recordings.repositories.sqlalchemy.migrate import (  # noqa: PLC0415
        migration_running,
    )

    if migration_running(connection):
        return _finding(
            "database.migrations",
            Status.FAIL,
            f"{message}; a migration is running now (a session holds the migration lock)",
            "wait for it to finish, then run doctor again (`helppet-recordings migrate` "
            "waits for it, then reports the revision it finds)",
        )
    return _finding("database.migrations", Status.FAIL, message, "run `helppet-recordings migrate`")
