"""SqlAlchemyRepository: recordings in SQLite or PostgreSQL through SQLAlchemy 2.x Core.

Standalone use::

    repo = SqlAlchemyRepository.from_url("postgresql://app@db/clinic")
    repo.create_schema()            # runs the package's Alembic migrations to head

Embedded use (the host application owns ``users``/``visits``/``appointments``
and its Alembic history)::

    recordings = define_recordings_table(
        host_metadata, users_table=users, visits_table=visits, appointments_table=appointments
    )
    repo = SqlAlchemyRepository(host_engine, table=recordings)

Rows are mapped to and from :class:`~helppet_recordings.models.Recording`;
callers never see a SQLAlchemy object. Every public method uses its own
connection from the engine's pool (one engine is shared by all threads), every
write is one transaction, and a status change is one conditional ``UPDATE``.
Database errors are translated at one point, :func:`translate_errors`.

The modules, one concern each:

- ``schema``: the tables (:func:`define_recordings_table`, :func:`define_audit_table`),
  their names and predicates;
- ``mapping``: rows to and from ``Recording``;
- ``statements``: the prepared statements the repository runs;
- ``reports``: the audit trail's and the statistics' statements;
- ``errors``: :func:`translate_errors`;
- ``engine``: engines with thread-pool defaults (used by ``from_url``);
- ``migrate``: :func:`alembic_config`, the migrations directory, and
  :class:`SchemaUpgrade` (what ``create_schema`` did);
- ``repository``: :class:`SqlAlchemyRepository`, whose sweeps and claims
  (``_claims``), key lookups and purging (``_lookups``), and audit trail and
  statistics (``_reporting``) are written in mixin classes of their own.

Everything public is importable from this package; the modules' layout may change.
"""

from __future__ import annotations

try:
    import sqlalchemy  # noqa: F401 - fail here, with an install hint, rather than deeper
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    from helppet_recordings.errors import MissingDependencyError

    raise MissingDependencyError("sqlalchemy", "sql") from exc

from helppet_recordings.repositories.sqlalchemy.engine import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_SQLITE_BUSY_TIMEOUT,
)
from helppet_recordings.repositories.sqlalchemy.errors import translate_errors
from helppet_recordings.repositories.sqlalchemy.migrate import (
    MIGRATIONS_DIR,
    SchemaUpgrade,
    alembic_config,
)
from helppet_recordings.repositories.sqlalchemy.repository import SqlAlchemyRepository
from helppet_recordings.repositories.sqlalchemy.schema import (
    ALEMBIC_VERSION_TABLE,
    AUDIT_TABLE_NAME,
    IDEMPOTENCY_KEY_PREDICATE,
    LIVE_PREDICATE,
    PURGEABLE_PREDICATE,
    RECORDINGS_TABLE_NAME,
    STALE_UPLOAD_PREDICATE,
    STORAGE_KEY_TYPE,
    WORK_QUEUE_PREDICATE,
    ForeignKeyTarget,
    audit_entries,
    define_audit_table,
    define_recordings_table,
    metadata,
    recordings,
)

__all__ = [
    "ALEMBIC_VERSION_TABLE",
    "AUDIT_TABLE_NAME",
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_SQLITE_BUSY_TIMEOUT",
    "IDEMPOTENCY_KEY_PREDICATE",
    "LIVE_PREDICATE",
    "MIGRATIONS_DIR",
    "PURGEABLE_PREDICATE",
    "RECORDINGS_TABLE_NAME",
    "STALE_UPLOAD_PREDICATE",
    "STORAGE_KEY_TYPE",
    "WORK_QUEUE_PREDICATE",
    "ForeignKeyTarget",
    "SchemaUpgrade",
    "SqlAlchemyRepository",
    "alembic_config",
    "audit_entries",
    "define_audit_table",
    "define_recordings_table",
    "metadata",
    "recordings",
    "translate_errors",
]
