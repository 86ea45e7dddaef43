"""The database as the commands show it: its URL, masked, and its schema revisions."""

from __future__ import annotations

from typing import TYPE_CHECKING

from helppet_recordings.repositories.sqlalchemy.engine import shown_url

if TYPE_CHECKING:
    import sqlalchemy as sa

__all__ = ["current_revisions", "head_revisions", "shown_url"]


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
