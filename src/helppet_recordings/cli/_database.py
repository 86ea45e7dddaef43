"""The database as the commands show it: its URL, masked, and its schema revisions."""

from __future__ import annotations

import os
import pathlib
from typing import TYPE_CHECKING

from helppet_recordings.repositories.sqlalchemy.engine import shown_url

if TYPE_CHECKING:
    import sqlalchemy as sa

    from helppet_recordings.environment import DeploymentSettings

__all__ = [
    "current_revisions",
    "head_revisions",
    "missing_sqlite_file",
    "opening_only",
    "shown_url",
    "without_creating",
]


def opening_only(environment: DeploymentSettings) -> DeploymentSettings:
    """Return ``environment`` with a ``DATABASE_URL`` that connecting cannot create.

    See :func:`without_creating`; a URL SQLAlchemy cannot parse is returned
    as it is, for ``build_repository`` to report.
    """
    import sqlalchemy as sa  # noqa: PLC0415 - the cli extra brings the sql one
    import sqlalchemy.exc  # noqa: PLC0415

    try:
        url = sa.make_url(environment.database_url)
    except (sa.exc.ArgumentError, ValueError):
        return environment
    opened = without_creating(url)
    if opened is url:
        return environment
    return environment.model_copy(
        update={"database_url": opened.render_as_string(hide_password=False)}
    )


def missing_sqlite_file(url: sa.URL) -> str | None:
    """Return the path of a SQLite database file that does not exist (connecting would create it).

    None for another database, an in-memory one, or a URI filename (SQLite
    decides what it names).
    """
    if url.get_backend_name() != "sqlite" or _in_memory(url) or _is_uri(url):
        return None
    database = url.database or ""
    return None if os.path.exists(database) else database  # noqa: PTH110 - a str path


def without_creating(url: sa.URL) -> sa.URL:
    """Return ``url`` so that connecting opens an existing SQLite file only, never creates one.

    A SQLite file path becomes a URI filename with ``mode=rw`` (a URI filename
    without a ``mode`` gets it); every other URL is returned as it is.
    """
    if url.get_backend_name() != "sqlite" or _in_memory(url) or "mode" in url.query:
        return url
    if _is_uri(url):
        return url.update_query_dict({"mode": "rw"})
    database = url.database or ""
    if database.startswith("file:"):
        return url  # a plain file named "file:...": SQLite reads it as a path, not a URI
    # A path, with uri=true or not: as a URI, with its ?, # and % escaped (and a drive on Windows).
    uri = pathlib.Path(os.path.abspath(database)).as_uri()  # noqa: PTH100 - a str path
    return url.set(database=uri).update_query_dict({"mode": "rw", "uri": "true"})


def _is_uri(url: sa.URL) -> bool:
    """Whether SQLite reads the URL's database as a URI filename: ``file:...`` with ``uri=true``.

    With ``uri=true``, a name that does not start with ``file:`` is still a path.
    """
    from sqlalchemy.util import asbool  # noqa: PLC0415 - the cli extra brings the sql one

    uri = url.query.get("uri")
    return isinstance(uri, str) and asbool(uri) and (url.database or "").startswith("file:")


def _in_memory(url: sa.URL) -> bool:
    database = url.database or ""
    return database in {"", ":memory:"} or url.query.get("mode") == "memory"


def head_revisions() -> list[str]:
    """Return the head revision(s) of the package's Alembic migrations."""
    from alembic.script import ScriptDirectory  # noqa: PLC0415 - the sql extra

    from helppet_recordings.repositories.sqlalchemy import alembic_config  # noqa: PLC0415

    return sorted(ScriptDirectory.from_config(alembic_config()).get_heads())


def current_revisions(connection: sa.Connection) -> list[str]:
    """Return the revision(s) the database is at; empty when it was never migrated."""
    from alembic.runtime.migration import MigrationContext  # noqa: PLC0415 - the sql extra

    from helppet_recordings.repositories.sqlalchemy import ALEMBIC_VERSION_TABLE  # noqa: PLC0415

    context = MigrationContext.configure(connection, opts={"version_table": ALEMBIC_VERSION_TABLE})
    return sorted(context.get_current_heads())


def known_revision(revision: str) -> bool:
    """Return whether ``revision`` is one of the package's migrations."""
    from alembic.script import ScriptDirectory  # noqa: PLC0415
    from alembic.util import CommandError  # noqa: PLC0415

    from helppet_recordings.repositories.sqlalchemy import alembic_config  # noqa: PLC0415

    try:
        return ScriptDirectory.from_config(alembic_config()).get_revision(revision) is not None
    except CommandError:
        return False
