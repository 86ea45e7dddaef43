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
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
import threading
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Self

from helppet_recordings import policy
from helppet_recordings.errors import (
    MissingDependencyError,
    RepositoryError,
    RepositoryUnavailableError,
)
from helppet_recordings.models import Recording, RecordingFilter, RecordingPage
from helppet_recordings.status import RecordingStatus, RecordingType

try:
    import sqlalchemy as sa
    import sqlalchemy.event
    import sqlalchemy.exc
    import sqlalchemy.pool
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingDependencyError("sqlalchemy", "sql") from exc

from helppet_recordings.repositories._sql_schema import (
    ALEMBIC_VERSION_TABLE,
    LIVE_PREDICATE,
    PURGEABLE_PREDICATE,
    RECORDINGS_TABLE_NAME,
    STALE_UPLOAD_PREDICATE,
    ForeignKeyTarget,
    define_recordings_table,
    metadata,
    recordings,
)

if TYPE_CHECKING:
    from types import TracebackType

    from alembic.config import Config

__all__ = [
    "ALEMBIC_VERSION_TABLE",
    "MIGRATIONS_DIR",
    "RECORDINGS_TABLE_NAME",
    "ForeignKeyTarget",
    "SqlAlchemyRepository",
    "alembic_config",
    "define_recordings_table",
    "metadata",
    "recordings",
    "translate_errors",
]

MIGRATIONS_DIR: Final = Path(__file__).resolve().parent.parent / "migrations"
"""The package's Alembic script directory (shipped inside the wheel)."""

DEFAULT_SQLITE_BUSY_TIMEOUT: Final = 10.0
"""Seconds a SQLite connection waits for a lock before giving up (``PRAGMA busy_timeout``)."""

DEFAULT_CONNECT_TIMEOUT: Final = 10
"""Seconds ``from_url`` lets a PostgreSQL connection attempt take before giving up."""

# Alembic keeps its running migration context in a module global: one migration per
# process at a time. (Across processes, env.py takes a database lock.)
_MIGRATION_LOCK: Final = threading.Lock()
_LOCK_RETRY_AFTER: Final = 1
_COLUMNS: Final = (
    "id",
    "visit_id",
    "appointment_id",
    "recorded_by_user_id",
    "recording_type",
    "status",
    "filename",
    "original_filename",
    "file_size_bytes",
    "duration_seconds",
    "mime_type",
    "s3_bucket",
    "s3_key",
    "s3_url",
    "transcript_text",
    "transcript_confidence",
    "transcript_language",
    "transcription_service",
    "processing_started_at",
    "processing_completed_at",
    "processing_error",
    "recording_metadata",
    "is_deleted",
    "deleted_at",
    "deleted_by_user_id",
    "created_at",
    "updated_at",
    "upload_expires_at",
    "idempotency_key",
    "content_md5",
    "content_sha256",
    "purged_at",
)
"""Every column, in the order ``_to_recording`` unpacks a row."""
_FILTER_COLUMNS: Final = {
    "user_id": "recorded_by_user_id",
    "appointment_id": "appointment_id",
    "visit_id": "visit_id",
    "status": "status",
}
_IMMUTABLE: Final = frozenset({"id", "s3_key", "idempotency_key"})
_MAX_CODE_POINT: Final = 0x10FFFF
_SURROGATES: Final = range(0xD800, 0xE000)
_STATUSES: Final = {status.value: status for status in RecordingStatus}
_TYPES: Final = {kind.value: kind for kind in RecordingType}
# SQLSTATEs worth retrying: connection exceptions (08), insufficient resources (53),
# operator intervention (57P01..57P05), serialization failure, deadlock, lock timeout,
# statement timeout / cancel.
_RETRYABLE_SQLSTATE_CLASSES: Final = ("08", "53", "57P")
_RETRYABLE_SQLSTATES: Final = frozenset({"40001", "40P01", "55P03", "57014"})
_LOCK_SQLSTATES: Final = frozenset({"40001", "40P01", "55P03"})
_UNIQUE_VIOLATION: Final = "23505"
# SQLite reports schema and programming problems as OperationalError too; these are not
# worth retrying. Everything else it reports that way (locked, busy, cannot open) is.
_SQLITE_PERMANENT = re.compile(
    r"no such (table|column|index)|has no column|syntax error|readonly database|malformed",
    re.IGNORECASE,
)
_SQLITE_LOCKED = re.compile(r"database( table)? is (locked|busy)", re.IGNORECASE)


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
def translate_errors(operation: str) -> Iterator[None]:
    """Translate SQLAlchemy errors raised inside the block into the package's errors.

    The one translation point of the repository:

    - a unique violation (duplicate id, storage key or idempotency key)
      becomes ``ValueError``;
    - a database that cannot be reached, a dropped connection, a lock or
      statement timeout, a serialization failure or deadlock, and a pool
      timeout become ``RepositoryUnavailableError`` (retryable, with
      ``retry_after``);
    - every other SQLAlchemy or driver error becomes ``RepositoryError``.

    Each is chained to the original with ``raise ... from exc``. Messages and
    details never carry SQL, parameters or server addresses: they may reach
    API clients. The cause keeps them for logs.
    """
    try:
        yield
    except sa.exc.IntegrityError as exc:
        if _sqlstate(exc) == _UNIQUE_VIOLATION or "UNIQUE constraint failed" in str(exc.orig):
            raise ValueError(_duplicate_message(exc)) from exc
        raise RepositoryError(
            "The recordings database refused the change (integrity constraint)",
            operation=operation,
            reason=_reason(exc),
        ) from exc
    except sa.exc.DBAPIError as exc:
        retry_after = _retry_after(exc)
        if retry_after is not None:
            raise RepositoryUnavailableError(
                retry_after=retry_after, operation=operation, reason=_reason(exc)
            ) from exc
        raise RepositoryError(operation=operation, reason=_reason(exc)) from exc
    except (sa.exc.TimeoutError, sa.exc.DisconnectionError) as exc:
        raise RepositoryUnavailableError(operation=operation, reason=_reason(exc)) from exc
    except sa.exc.SQLAlchemyError as exc:
        raise RepositoryError(operation=operation, reason=_reason(exc)) from exc


class SqlAlchemyRepository:
    """Recordings in a SQL database (SQLite or PostgreSQL 15+), through one SQLAlchemy engine.

    Thread-safe: one engine is shared, each call takes its own connection
    from the pool and returns it. ``save`` is a single
    ``UPDATE ... WHERE id = :id AND status = :expected AND NOT is_deleted``,
    so two racing writers cannot both move a recording. Datetimes come back
    timezone-aware in UTC on every backend.

    ``table`` is the recordings table to use: by default the package's
    standalone table; an embedding application passes the one it defined
    in its own metadata with :func:`define_recordings_table`.

    An in-memory SQLite database lives in one connection (``StaticPool``); the
    repository then serializes its calls with a lock so that one thread's
    transaction never interleaves with another's.
    """

    def __init__(self, engine: sa.Engine, *, table: sa.Table | None = None) -> None:
        self._engine = engine
        self._table = recordings if table is None else table
        self._owns_engine = False
        single_connection = isinstance(engine.pool, sa.pool.StaticPool)
        self._lock: contextlib.AbstractContextManager[Any] = (
            threading.RLock() if single_connection else contextlib.nullcontext()
        )
        self._statements = _Statements(self._table)

    @classmethod
    def from_url(
        cls,
        url: str | sa.URL,
        *,
        table: sa.Table | None = None,
        sqlite_busy_timeout: float = DEFAULT_SQLITE_BUSY_TIMEOUT,
        **engine_kwargs: Any,
    ) -> Self:
        """Build a repository over a new engine for ``url``, configured for thread pools.

        - ``postgresql://`` uses psycopg 3 (the ``postgres`` extra), checks
          pooled connections before use (``pool_pre_ping``) and gives up
          connecting after ``DEFAULT_CONNECT_TIMEOUT`` seconds unless the URL
          or ``connect_args`` say otherwise.
        - SQLite connections may be used from any thread, enforce foreign
          keys and wait ``sqlite_busy_timeout`` seconds for locks; a file
          database uses write-ahead logging so readers never block the
          writer. ``sqlite://`` (in memory) is one shared connection.

        ``engine_kwargs`` go to ``sqlalchemy.create_engine`` and win over
        these defaults. The repository owns the engine: :meth:`close`
        disposes of it.
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
        repository = cls(engine, table=table)
        repository._owns_engine = True
        return repository

    @property
    def engine(self) -> sa.Engine:
        """The engine the repository uses."""
        return self._engine

    @property
    def table(self) -> sa.Table:
        """The recordings table the repository reads and writes."""
        return self._table

    def close(self) -> None:
        """Dispose of the engine's connections if this repository created the engine."""
        if self._owns_engine:
            self._engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._engine.url!r}, table={self._table.fullname!r})"

    # ------------------------------------------------------------------------- schema

    def create_schema(self) -> None:
        """Bring a standalone database to the current schema (Alembic upgrade to head).

        Idempotent, and safe to call from several threads or processes at
        once: the migration holds an advisory lock on PostgreSQL and the
        write lock on SQLite, so latecomers wait and then find the schema
        at head. Only for the package's standalone table: an application
        that embeds the table in its own metadata manages it with its own
        migrations (``ValueError`` otherwise).
        """
        if self._table is not recordings:
            msg = (
                "create_schema() manages only the package's standalone recordings table; "
                "an embedded table belongs to the host application's migrations"
            )
            raise ValueError(msg)
        from alembic import command  # noqa: PLC0415 - alembic is needed only here

        with (
            _MIGRATION_LOCK,
            self._lock,
            translate_errors("create_schema"),
            self._engine.begin() as connection,
        ):
            command.upgrade(alembic_config(connection), "head")

    # ------------------------------------------------------------------------ the port

    def add(self, recording: Recording) -> None:
        """Store a new recording in one ``INSERT``.

        Raises ``ValueError`` if its id, its storage key or its owner's
        idempotency key is already used (the database's unique constraints).
        """
        row = _to_row(recording)
        with self._lock, translate_errors("add"), self._engine.begin() as connection:
            connection.execute(self._statements.insert, row)

    def get(self, recording_id: uuid.UUID) -> Recording | None:
        """Return the recording with this id (soft-deleted ones included), or None."""
        with self._lock, translate_errors("get"), self._engine.connect() as connection:
            row = connection.execute(self._statements.get, {"id": recording_id}).first()
        return None if row is None else _to_recording(row)

    def save(self, recording: Recording, *, expected_status: RecordingStatus) -> bool:
        """Write every field of ``recording`` if the stored one is live and in ``expected_status``.

        One conditional ``UPDATE``; returns whether it changed the row. The
        storage key and the idempotency key never change: saving a recording
        whose keys differ from the stored ones raises ``ValueError``.
        """
        params = {f"v_{name}": value for name, value in _to_row(recording).items()}
        params["w_status"] = RecordingStatus(expected_status).value
        statements = self._statements
        with self._lock, translate_errors("save"), self._engine.begin() as connection:
            if connection.execute(statements.update, params).rowcount == 1:
                return True
            stored = connection.execute(statements.keys_of, {"id": recording.id}).first()
        if stored is not None and tuple(stored) != (recording.s3_key, recording.idempotency_key):
            msg = "a recording's storage key and idempotency key never change"
            raise ValueError(msg)
        return False

    def find(self, recording_filter: RecordingFilter, *, limit: int, offset: int) -> RecordingPage:
        """Return live recordings matching the filter, newest first, and their total count.

        Ordered by ``created_at DESC, id DESC`` (served by the owner index).
        The total, counted with the same filters, comes with the page in one
        statement (one round trip).
        """
        if limit < 0 or offset < 0:
            msg = "limit and offset must not be negative"
            raise ValueError(msg)
        params: dict[str, Any] = {"user_id": recording_filter.user_id}
        if recording_filter.appointment_id is not None:
            params["appointment_id"] = recording_filter.appointment_id
        if recording_filter.visit_id is not None:
            params["visit_id"] = recording_filter.visit_id
        if recording_filter.status is not None:
            params["status"] = RecordingStatus(recording_filter.status).value
        page_statement, count_statement = self._statements.finder(frozenset(params))
        with self._lock, translate_errors("find"), self._engine.connect() as connection:
            rows = connection.execute(
                page_statement, {**params, "limit": limit, "offset": offset}
            ).all()
            if rows:
                total = int(rows[0][-1])
            elif offset == 0 and limit > 0:
                total = 0
            else:
                total = int(connection.execute(count_statement, params).scalar_one())
        return RecordingPage(items=[_to_recording(row[:-1]) for row in rows], total=total)

    def list_stale_uploads(self, *, now: dt.datetime, limit: int) -> list[Recording]:
        """Return up to ``limit`` live uploading recordings whose deadline is before ``now``.

        Oldest deadline first (ties by id), served by the partial
        ``(status, upload_expires_at, id)`` index.
        """
        params = {"now": _to_db_time(now), "limit": limit}
        with self._lock, translate_errors("list_stale_uploads"), self._engine.connect() as conn:
            rows = conn.execute(self._statements.stale, params).all()
        return [_to_recording(row) for row in rows]

    def claim_stale_uploads(
        self, *, now: dt.datetime, limit: int, lease_until: dt.datetime
    ) -> list[Recording]:
        """Take up to ``limit`` stale uploads for this sweeper, pushing their deadline to the lease.

        One transaction: the stale rows are selected oldest deadline first
        and locked (PostgreSQL: ``FOR UPDATE SKIP LOCKED``, so concurrent
        sweepers take disjoint batches without waiting; SQLite: the database
        write lock, taken before reading), then their ``upload_expires_at``
        becomes ``lease_until``. Returns them as claimed, in that order.
        """
        lease = _to_db_time(lease_until)
        statements = self._statements
        params = {"now": _to_db_time(now), "limit": limit}
        with self._lock, translate_errors("claim_stale_uploads"), self._engine.begin() as conn:
            if conn.dialect.name == "sqlite":
                _sqlite_begin_immediate(conn)
                rows = conn.execute(statements.stale, params).all()
            else:
                rows = conn.execute(statements.claim, params).all()
            claimed = [_to_recording(row) for row in rows]
            if claimed:
                conn.execute(
                    statements.extend_deadline,
                    {"ids": [recording.id for recording in claimed], "lease": lease},
                )
        for recording in claimed:
            recording.upload_expires_at = _from_db_time(lease)
        return claimed

    def find_by_idempotency_key(self, user_id: uuid.UUID, key: str) -> Recording | None:
        """Return the user's recording created with this idempotency key (deleted ones too)."""
        params = {"user_id": user_id, "key": key}
        with self._lock, translate_errors("find_by_idempotency_key"), self._engine.connect() as c:
            row = c.execute(self._statements.by_idempotency_key, params).first()
        return None if row is None else _to_recording(row)

    def list_by_key(self, *, prefix: str, after: str | None, limit: int) -> list[Recording]:
        """Return up to ``limit`` recordings whose key starts with ``prefix``, by ascending key.

        Only keys greater than ``after`` (when given). Keys compare in code
        point order on every backend (PostgreSQL: the column's ``C``
        collation), so this is a range scan of the unique key index.
        Deleted recordings are included.
        """
        upper = _prefix_successor(prefix)
        low = prefix if after is None or after < prefix else after
        params: dict[str, Any] = {"low": low, "limit": limit}
        statement = self._statements.by_key(bounded=upper is not None, inclusive=low == prefix)
        if upper is not None:
            params["upper"] = upper
        with self._lock, translate_errors("list_by_key"), self._engine.connect() as connection:
            rows = connection.execute(statement, params).all()
        return [_to_recording(row) for row in rows]

    def list_purgeable(self, *, deleted_before: dt.datetime, limit: int) -> list[Recording]:
        """Return up to ``limit`` soft-deleted, unpurged recordings deleted before then.

        Oldest deletion first (ties by id), served by the partial purge index.
        """
        params = {"before": _to_db_time(deleted_before), "limit": limit}
        with self._lock, translate_errors("list_purgeable"), self._engine.connect() as connection:
            rows = connection.execute(self._statements.purgeable, params).all()
        return [_to_recording(row) for row in rows]

    def mark_purged(self, recording: Recording) -> bool:
        """Write a scrubbed copy of a soft-deleted recording, in one conditional ``UPDATE``.

        Returns False, changing nothing, unless the stored recording is
        soft-deleted and not yet purged.
        """
        params = {f"v_{name}": value for name, value in _to_row(recording).items()}
        with self._lock, translate_errors("mark_purged"), self._engine.begin() as connection:
            return connection.execute(self._statements.purge, params).rowcount == 1


class _Statements:
    """Every statement the repository runs, built once per table with bound parameters.

    Reusing statement objects lets SQLAlchemy skip building them and computing
    their cache keys on every call; only the parameters change.
    """

    def __init__(self, table: sa.Table) -> None:
        self.table = table
        self.columns = columns = [table.c[name] for name in _COLUMNS]
        # Literal SQL, word for word the partial indexes' predicates (see _sql_schema).
        self.live = sa.text(LIVE_PREDICATE)
        self.select = sa.select(*columns)
        self.insert = table.insert()
        self.get = self.select.where(table.c.id == sa.bindparam("id"))
        self.keys_of = sa.select(table.c.s3_key, table.c.idempotency_key).where(
            table.c.id == sa.bindparam("id")
        )
        self.update = (
            table.update()
            .where(
                table.c.id == sa.bindparam("v_id"),
                table.c.s3_key == sa.bindparam("v_s3_key"),
                table.c.idempotency_key.is_not_distinct_from(sa.bindparam("v_idempotency_key")),
                table.c.status == sa.bindparam("w_status"),
                self.live,
            )
            .values(self._set(columns, exclude=_IMMUTABLE))
        )
        self.stale = (
            self.select.where(
                sa.text(STALE_UPLOAD_PREDICATE),
                table.c.upload_expires_at
                < sa.bindparam("now", type_=table.c.upload_expires_at.type),
            )
            .order_by(table.c.upload_expires_at, table.c.id)
            .limit(sa.bindparam("limit", type_=sa.Integer()))
        )
        self.claim = self.stale.with_for_update(skip_locked=True)
        self.extend_deadline = (
            table.update()
            .where(table.c.id.in_(sa.bindparam("ids", expanding=True)))
            .values(upload_expires_at=sa.bindparam("lease", type_=table.c.upload_expires_at.type))
        )
        self.by_idempotency_key = self.select.where(
            table.c.recorded_by_user_id == sa.bindparam("user_id"),
            table.c.idempotency_key == sa.bindparam("key"),
        )
        self.purgeable = (
            self.select.where(
                sa.text(PURGEABLE_PREDICATE),
                table.c.deleted_at < sa.bindparam("before", type_=table.c.deleted_at.type),
            )
            .order_by(table.c.deleted_at, table.c.id)
            .limit(sa.bindparam("limit", type_=sa.Integer()))
        )
        self.purge = (
            table.update()
            .where(
                table.c.id == sa.bindparam("v_id"),
                sa.text(PURGEABLE_PREDICATE),
            )
            .values(self._set(columns, exclude=frozenset({"id"})))
        )
        self._by_key: dict[tuple[bool, bool], sa.Select[Any]] = {}
        self._finders: dict[frozenset[str], tuple[sa.Select[Any], sa.Select[Any]]] = {}

    @staticmethod
    def _set(
        columns: list[sa.Column[Any]], *, exclude: frozenset[str]
    ) -> dict[sa.Column[Any], sa.BindParameter[Any]]:
        """``SET column = :v_column`` for every column not in ``exclude``."""
        return {
            column: sa.bindparam(f"v_{column.name}", type_=column.type)
            for column in columns
            if column.name not in exclude
        }

    def by_key(self, *, bounded: bool, inclusive: bool) -> sa.Select[Any]:
        """Return the key-range statement: ``:low <(=) s3_key (< :upper)``, by key."""
        statement = self._by_key.get((bounded, inclusive))
        if statement is None:
            key = self.table.c.s3_key
            low = sa.bindparam("low", type_=key.type)
            conditions = [key >= low if inclusive else key > low]
            if bounded:
                conditions.append(key < sa.bindparam("upper", type_=key.type))
            statement = self._by_key[(bounded, inclusive)] = (
                self.select.where(*conditions)
                .order_by(key)
                .limit(sa.bindparam("limit", type_=sa.Integer()))
            )
        return statement

    def finder(self, filters: frozenset[str]) -> tuple[sa.Select[Any], sa.Select[Any]]:
        """Return the page and count statements for a listing by these filter columns."""
        statements = self._finders.get(filters)
        if statements is None:
            table = self.table
            conditions: list[sa.ColumnElement[bool] | sa.TextClause] = [self.live]
            conditions.extend(
                table.c[_FILTER_COLUMNS[name]] == sa.bindparam(name) for name in sorted(filters)
            )
            count: sa.Select[Any] = sa.select(sa.func.count()).select_from(table).where(*conditions)
            # The page carries the total (an uncorrelated subquery, run once), so a
            # listing is one round trip; the count alone is for pages past the end.
            page: sa.Select[Any] = (
                sa.select(*self.columns, count.correlate(None).scalar_subquery().label("total"))
                .where(*conditions)
                .order_by(table.c.created_at.desc(), table.c.id.desc())
                .limit(sa.bindparam("limit", type_=sa.Integer()))
                .offset(sa.bindparam("offset", type_=sa.Integer()))
            )
            statements = self._finders[filters] = (page, count)
        return statements


# ----------------------------------------------------------------------------- mapping


def _to_row(recording: Recording) -> dict[str, Any]:
    """Return the column values of ``recording``."""
    metadata_json = (
        None
        if recording.recording_metadata is None
        else policy.dump_metadata(recording.recording_metadata)
    )
    return {
        "id": recording.id,
        "visit_id": recording.visit_id,
        "appointment_id": recording.appointment_id,
        "recorded_by_user_id": recording.recorded_by_user_id,
        "recording_type": RecordingType(recording.recording_type).value,
        "status": RecordingStatus(recording.status).value,
        "filename": recording.filename,
        "original_filename": recording.original_filename,
        "file_size_bytes": recording.file_size_bytes,
        "duration_seconds": recording.duration_seconds,
        "mime_type": recording.mime_type,
        "s3_bucket": recording.s3_bucket,
        "s3_key": recording.s3_key,
        "s3_url": recording.s3_url,
        "transcript_text": recording.transcript_text,
        "transcript_confidence": recording.transcript_confidence,
        "transcript_language": recording.transcript_language,
        "transcription_service": recording.transcription_service,
        "processing_started_at": _to_db_time(recording.processing_started_at),
        "processing_completed_at": _to_db_time(recording.processing_completed_at),
        "processing_error": recording.processing_error,
        "recording_metadata": metadata_json,
        "is_deleted": recording.is_deleted,
        "deleted_at": _to_db_time(recording.deleted_at),
        "deleted_by_user_id": recording.deleted_by_user_id,
        "created_at": _to_db_time(recording.created_at),
        "updated_at": _to_db_time(recording.updated_at),
        "upload_expires_at": _to_db_time(recording.upload_expires_at),
        "idempotency_key": recording.idempotency_key,
        "content_md5": recording.content_md5,
        "content_sha256": recording.content_sha256,
        "purged_at": _to_db_time(recording.purged_at),
    }


def _to_recording(row: Sequence[Any]) -> Recording:
    """Return the domain object for one row; a row the package cannot read is a RepositoryError."""
    try:
        (
            recording_id,
            visit_id,
            appointment_id,
            recorded_by_user_id,
            recording_type,
            status,
            filename,
            original_filename,
            file_size_bytes,
            duration_seconds,
            mime_type,
            s3_bucket,
            s3_key,
            s3_url,
            transcript_text,
            transcript_confidence,
            transcript_language,
            transcription_service,
            processing_started_at,
            processing_completed_at,
            processing_error,
            recording_metadata,
            is_deleted,
            deleted_at,
            deleted_by_user_id,
            created_at,
            updated_at,
            upload_expires_at,
            idempotency_key,
            content_md5,
            content_sha256,
            purged_at,
        ) = row
        return Recording(
            id=recording_id,
            visit_id=visit_id,
            appointment_id=appointment_id,
            recorded_by_user_id=recorded_by_user_id,
            recording_type=_TYPES[recording_type],
            status=_STATUSES[status],
            filename=filename,
            original_filename=original_filename,
            file_size_bytes=file_size_bytes,
            duration_seconds=duration_seconds,
            mime_type=mime_type,
            s3_bucket=s3_bucket,
            s3_key=s3_key,
            s3_url=s3_url,
            transcript_text=transcript_text,
            transcript_confidence=transcript_confidence,
            transcript_language=transcript_language,
            transcription_service=transcription_service,
            processing_started_at=_from_db_time(processing_started_at),
            processing_completed_at=_from_db_time(processing_completed_at),
            processing_error=processing_error,
            recording_metadata=(
                None if recording_metadata is None else json.loads(recording_metadata)
            ),
            is_deleted=bool(is_deleted),
            deleted_at=_from_db_time(deleted_at),
            deleted_by_user_id=deleted_by_user_id,
            upload_expires_at=_from_db_time(upload_expires_at),
            idempotency_key=idempotency_key,
            content_md5=content_md5,
            content_sha256=content_sha256,
            purged_at=_from_db_time(purged_at),
            created_at=_required_time(created_at, "created_at"),
            updated_at=_required_time(updated_at, "updated_at"),
        )
    except (ValueError, TypeError, KeyError) as exc:
        raise RepositoryError(
            "A stored recording could not be read", operation="read", recording_id=str(row[0])
        ) from exc


def _to_db_time(value: dt.datetime | None) -> dt.datetime | None:
    """Return ``value`` in UTC; SQLite stores no offset, so every stored time is UTC."""
    if value is None:
        return None
    if value.tzinfo is None or value.utcoffset() is None:
        msg = "datetimes stored in the repository must be timezone-aware"
        raise ValueError(msg)
    return value.astimezone(dt.UTC)


def _from_db_time(value: dt.datetime | None) -> dt.datetime | None:
    """Return a stored time as an aware UTC datetime (SQLite gives it back naive)."""
    if value is None:
        return None
    if value.tzinfo is dt.UTC:
        return value
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def _required_time(value: dt.datetime | None, column: str) -> dt.datetime:
    converted = _from_db_time(value)
    if converted is None:
        msg = f"{column} is NULL"
        raise ValueError(msg)
    return converted


# --------------------------------------------------------------------- errors, engines


def _sqlstate(exc: sa.exc.DBAPIError) -> str | None:
    state = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    return state if isinstance(state, str) else None


def _reason(exc: Exception) -> str:
    """Describe ``exc`` safely: its class and, for a driver error, its SQLSTATE."""
    if isinstance(exc, sa.exc.DBAPIError) and exc.orig is not None:
        state = _sqlstate(exc)
        name = type(exc.orig).__name__
        return f"{name} ({state})" if state else name
    return type(exc).__name__


def _retry_after(exc: sa.exc.DBAPIError) -> int | None:
    """Return seconds to wait if retrying ``exc`` can succeed, else None."""
    default = RepositoryUnavailableError.default_retry_after
    state = _sqlstate(exc)
    if exc.connection_invalidated or isinstance(exc, sa.exc.InterfaceError):
        retry_after: int | None = default
    elif state is not None:
        retryable = state in _RETRYABLE_SQLSTATES or state.startswith(_RETRYABLE_SQLSTATE_CLASSES)
        retry_after = _LOCK_RETRY_AFTER if state in _LOCK_SQLSTATES else default
        retry_after = retry_after if retryable or state in _LOCK_SQLSTATES else None
    elif isinstance(exc, sa.exc.OperationalError):
        # No SQLSTATE: the driver failed before the server answered (cannot connect,
        # connection lost, timeout), or SQLite reports a lock, an unopenable file or a
        # schema problem (the last is not worth retrying).
        message = str(exc.orig)
        retry_after = _LOCK_RETRY_AFTER if _SQLITE_LOCKED.search(message) else default
        retry_after = None if _SQLITE_PERMANENT.search(message) else retry_after
    else:
        retry_after = None
    return retry_after


def _duplicate_message(exc: sa.exc.IntegrityError) -> str:
    text = str(exc.orig)
    if "idempotency_key" in text:
        return "this idempotency key already exists for this user"
    if "s3_key" in text:
        return "a recording with this storage key already exists"
    return "a recording with this id already exists"


def _prefix_successor(prefix: str) -> str | None:
    """Return the least string greater than every string that starts with ``prefix``.

    None when there is none (an empty prefix, or one of only the largest code point).
    """
    stripped = prefix.rstrip(chr(_MAX_CODE_POINT))
    if not stripped:
        return None
    code = ord(stripped[-1]) + 1
    if code in _SURROGATES:  # not encodable as UTF-8: skip to the next real character
        code = _SURROGATES.stop
    return stripped[:-1] + chr(code)


def _sqlite_begin_immediate(connection: sa.Connection) -> None:
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
