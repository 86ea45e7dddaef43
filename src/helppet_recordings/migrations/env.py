"""Alembic environment of the package's standalone migrations.

Run programmatically by ``SqlAlchemyRepository.create_schema()`` through
:func:`helppet_recordings.repositories.sqlalchemy.alembic_config`, which passes
an open connection in ``config.attributes["connection"]`` (or a URL). The
revision is kept in ``helppet_recordings_alembic_version`` so a host
application's own ``alembic_version`` table is never touched.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from helppet_recordings.repositories.sqlalchemy.migrate import (
    lock_for_migration,
    migration_transaction,
)
from helppet_recordings.repositories.sqlalchemy.schema import ALEMBIC_VERSION_TABLE, metadata


def _include_name(name: str | None, type_: str, _parents: object) -> bool:
    """Let autogenerate see only the package's own tables, never a host's."""
    return type_ != "table" or name in metadata.tables


def _configure(**options: object) -> None:
    context.configure(
        target_metadata=metadata,
        version_table=ALEMBIC_VERSION_TABLE,
        include_name=_include_name,
        compare_type=True,
        **options,  # type: ignore[arg-type]
    )


def _run_on(connection: sa.Connection) -> None:
    _configure(connection=connection)
    with context.begin_transaction():
        # Two processes migrating at once: the second waits here, then finds head.
        lock_for_migration(connection)
        context.run_migrations()


def run_migrations_offline() -> None:
    """Emit the migration SQL for ``sqlalchemy.url`` without connecting."""
    _configure(url=context.config.get_main_option("sqlalchemy.url"), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run the migrations on the given connection, or on a new one to ``sqlalchemy.url``."""
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run_on(connection)
        return
    url = context.config.get_main_option("sqlalchemy.url")
    if url is None:
        msg = "pass a connection or set sqlalchemy.url (see alembic_config())"
        raise RuntimeError(msg)
    # Errors and statement logs never show the statements' values (build_engine's default).
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool, hide_parameters=True)
    try:
        # At READ COMMITTED on PostgreSQL, so a migration that waited for the lock sees what
        # the one before it committed.
        with migration_transaction(engine) as new_connection:
            _run_on(new_connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
