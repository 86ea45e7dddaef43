"""The database as the commands show it: its URL, masked, and its schema revisions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final
from urllib.parse import quote_plus

if TYPE_CHECKING:
    import sqlalchemy as sa

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
