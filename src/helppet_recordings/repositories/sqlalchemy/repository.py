"""SqlAlchemyRepository: the repository port over one SQLAlchemy engine."""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn, Self

import sqlalchemy as sa
import sqlalchemy.exc
import sqlalchemy.pool

from helppet_recordings.audit import AuditEntry
from helppet_recordings.errors import RepositoryUnavailableError
from helppet_recordings.models import Recording
from helppet_recordings.repositories.sqlalchemy._claims import ClaimQueries
from helppet_recordings.repositories.sqlalchemy._listing import ListingQueries
from helppet_recordings.repositories.sqlalchemy._lookups import KeyQueries
from helppet_recordings.repositories.sqlalchemy._reporting import AuditQueries
from helppet_recordings.repositories.sqlalchemy.driver import NotOnDriverPath, driver_path
from helppet_recordings.repositories.sqlalchemy.engine import (
    DEFAULT_MAX_OVERFLOW,
    DEFAULT_POOL_SIZE,
    DEFAULT_SQLITE_BUSY_TIMEOUT,
    build_engine,
    shown_url,
)
from helppet_recordings.repositories.sqlalchemy.errors import translate_errors
from helppet_recordings.repositories.sqlalchemy.mapping import (
    to_db_time,
    to_recording,
    to_row,
)
from helppet_recordings.repositories.sqlalchemy.migrate import (
    MIGRATION_LOCK,
    SchemaUpgrade,
    migration_transaction,
    upgrade_to_head,
)
from helppet_recordings.repositories.sqlalchemy.reports import (
    AuditStatements,
    StatsStatements,
)
from helppet_recordings.repositories.sqlalchemy.schema import audit_entries, recordings
from helppet_recordings.repositories.sqlalchemy.statements import (
    Statements,
    changed_columns,
)
from helppet_recordings.status import RecordingStatus

if TYPE_CHECKING:
    from types import TracebackType

__all__ = ["SqlAlchemyRepository"]


class SqlAlchemyRepository(ListingQueries, ClaimQueries, KeyQueries, AuditQueries):
    """Recordings in a SQL database (SQLite or PostgreSQL 15+), through one SQLAlchemy engine.

    Thread-safe: one engine is shared, each call takes its own connection
    from the pool and returns it. ``save`` is a single
    ``UPDATE ... WHERE id = :id AND status = :expected AND NOT is_deleted``,
    so two racing writers cannot both move a recording. Datetimes come back
    timezone-aware in UTC on every backend.

    ``table`` is the recordings table to use: by default the package's
    standalone table; an embedding application passes the one it defined
    in its own metadata with :func:`define_recordings_table`. A table without
    a column for every ``Recording`` field is refused with ``ValueError``.

    An in-memory SQLite database lives in one connection (``StaticPool``); the
    repository then serializes its calls with a lock so that one thread's
    transaction never interleaves with another's.

    ``audit_table`` is the audit trail's table: by default the package's
    standalone one (migration ``0003``); an embedding application defines it
    in its own metadata with :func:`define_audit_table` and passes it.

    The sweeps and claims, the key lookups and purging, and the audit trail
    and statistics are written in :class:`ClaimQueries`, :class:`KeyQueries`
    and :class:`AuditQueries`.
    """

    supports_atomic_audit: ClassVar[bool] = True
    """It stores an audited change and its entry in one transaction (``AuditedWrites``)."""

    def __init__(
        self,
        engine: sa.Engine,
        *,
        table: sa.Table | None = None,
        audit_table: sa.Table | None = None,
    ) -> None:
        self._engine = engine
        self._table = recordings if table is None else table
        self._audit_statements = AuditStatements(
            audit_entries if audit_table is None else audit_table
        )
        self._stats_statements = StatsStatements(self._table)
        self._owns_engine = False
        single_connection = isinstance(engine.pool, sa.pool.StaticPool)
        self._lock: contextlib.AbstractContextManager[Any] = (
            threading.RLock() if single_connection else contextlib.nullcontext()
        )
        self._statements = Statements(self._table)
        # get, add and save's transitions skip SQLAlchemy's execution machinery where that
        # changes nothing (psycopg 3, native column types, nobody watching): see driver.py.
        self._driver = driver_path(
            engine.dialect,
            self._table,
            schema_translate_map=engine.get_execution_options().get("schema_translate_map"),
        )
        # One statement is atomic on its own: on PostgreSQL, add, get and save run theirs
        # without BEGIN and COMMIT (one round trip instead of three), on the same pool.
        self._single: sa.Engine = (
            engine.execution_options(isolation_level="AUTOCOMMIT")
            if engine.dialect.name == "postgresql"
            else engine
        )

    @classmethod
    def from_url(
        cls,
        url: str | sa.URL,
        *,
        table: sa.Table | None = None,
        audit_table: sa.Table | None = None,
        sqlite_busy_timeout: float = DEFAULT_SQLITE_BUSY_TIMEOUT,
        pool_size: int = DEFAULT_POOL_SIZE,
        max_overflow: int = DEFAULT_MAX_OVERFLOW,
        pool_pre_ping: bool = False,
        pool_recycle: float | None = None,
        **engine_kwargs: Any,
    ) -> Self:
        """Build a repository over a new engine for ``url``, configured for thread pools.

        - The pool keeps ``pool_size`` connections (default 40, the thread
          pool of one uvicorn worker) and opens up to ``max_overflow`` more
          (default 10) for bursts; an in-memory SQLite database ignores both.
          With several server processes on one database, size them so that
          processes x (pool_size + max_overflow) stays under the server's
          ``max_connections`` (see ``docs/deployment.md``).
        - ``pool_pre_ping`` (default off) tests every connection with a round
          trip when it is checked out. Instead, PostgreSQL connections are
          replaced after ``pool_recycle`` seconds (default
          ``DEFAULT_POOL_RECYCLE``, 30 minutes), and a connection the server
          dropped fails one call with ``DATABASE_UNAVAILABLE`` (retryable)
          and makes the pool replace every connection opened before it.
        - ``postgresql://`` uses psycopg 3 (the ``postgres`` extra) and gives
          up connecting after ``DEFAULT_CONNECT_TIMEOUT`` seconds unless the
          URL or ``connect_args`` say otherwise.
        - SQLite connections may be used from any thread, enforce foreign
          keys and wait ``sqlite_busy_timeout`` seconds for locks; a file
          database uses write-ahead logging so readers never block the
          writer. ``sqlite://`` (in memory) is one shared connection.
        - Statement parameters are hidden from SQLAlchemy's statement log
          (``hide_parameters=True``): they hold filenames, metadata and
          transcripts. An engine you build yourself and pass to the
          constructor should set it too. The repository's errors hold no
          value of the row or the parameters on any engine.

        ``engine_kwargs`` go to ``sqlalchemy.create_engine`` and win over
        these defaults. The repository owns the engine: :meth:`close`
        disposes of it.
        """
        engine = build_engine(
            url,
            sqlite_busy_timeout=sqlite_busy_timeout,
            pool_size=pool_size,
            max_overflow=max_overflow,
            pool_pre_ping=pool_pre_ping,
            pool_recycle=pool_recycle,
            **engine_kwargs,
        )
        repository = cls(engine, table=table, audit_table=audit_table)
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
        url = shown_url(self._engine.url)  # passwords masked, in the user part and the query
        return f"{type(self).__name__}({url!r}, table={self._table.fullname!r})"

    # ------------------------------------------------------------------------- schema

    def create_schema(self) -> SchemaUpgrade:
        """Bring a standalone database to the current schema (Alembic upgrade to head).

        Idempotent, and safe to call from several threads or processes at
        once: the migration holds an advisory lock on PostgreSQL and the
        write lock on SQLite, so latecomers wait and then find the schema
        at head (on PostgreSQL its transaction runs at ``READ COMMITTED``,
        whatever the default isolation, so they see what was committed
        while they waited). Returns the revisions before and after, read
        under that lock: only the call that applied migrations reports
        ``changed``.
        Only for the package's standalone table: an application that embeds
        the table in its own metadata manages it with its own migrations
        (``ValueError`` otherwise). A database at a revision the
        package does not know (migrated by a newer version) is left as it is:
        ``RepositoryError`` naming the revision. So is one that holds the
        package's tables but records no revision (made by
        ``metadata.create_all()`` or by hand): ``RepositoryError`` naming the
        tables, to be adopted with Alembic's ``stamp``.
        """
        if self._table is not recordings:
            msg = (
                "create_schema() manages only the package's standalone recordings table; "
                "an embedded table belongs to the host application's migrations"
            )
            raise ValueError(msg)
        with (
            MIGRATION_LOCK,
            self._lock,
            translate_errors("create_schema"),
            migration_transaction(self._engine) as connection,
        ):
            return upgrade_to_head(connection)

    # ------------------------------------------------------------------------ the port

    def add(self, recording: Recording) -> None:
        """Store a new recording in one ``INSERT`` of the columns that have a value.

        Raises ``DuplicateRecordingError`` (a ``ValueError``) if its id, its
        storage key or its owner's idempotency key is already used (the
        database's unique constraints); nothing is stored then.
        """
        statements = self._statements
        # NULLs are left to the table: the INSERT names only the columns that have a value
        # (or a server default), which SQLAlchemy compiles once per column set.
        row = {
            name: value
            for name, value in to_row(recording).items()
            if value is not None or name in statements.server_defaults
        }
        with self._lock, translate_errors("add"), self._single.begin() as connection:
            self._rowcount(connection, statements.insert, row, by_keys=True)

    def get(self, recording_id: uuid.UUID) -> Recording | None:
        """Return the recording with this id (soft-deleted ones included), or None.

        A read on a pooled connection the server had dropped (a restart, a
        failover) is retried once: the pool then replaces every connection
        opened before the drop, so later calls need no retry.
        """
        params = {"id": recording_id}
        try:
            row = self._get_row(params)
        except RepositoryUnavailableError as exc:
            cause = exc.__cause__
            if not (isinstance(cause, sa.exc.DBAPIError) and cause.connection_invalidated):
                raise
            row = self._get_row(params)
        return None if row is None else to_recording(row)

    def _get_row(self, params: dict[str, Any]) -> Sequence[Any] | None:
        with self._lock, translate_errors("get"), self._single.connect() as connection:
            return self._first(connection, self._statements.get, params)

    def _first(
        self, connection: sa.Connection, statement: sa.Select[Any], params: dict[str, Any]
    ) -> Sequence[Any] | None:
        """Return a query's first row: on the driver path where there is one (see driver.py)."""
        if self._driver is not None:
            with contextlib.suppress(NotOnDriverPath):
                return self._driver.first(connection, statement, params)
        return connection.execute(statement, params).first()

    def _rowcount(
        self,
        connection: sa.Connection,
        statement: sa.Insert | sa.Update,
        params: dict[str, Any],
        *,
        by_keys: bool = False,
    ) -> int:
        """Run a write and return the rows it changed: on the driver path where there is one."""
        if self._driver is not None:
            with contextlib.suppress(NotOnDriverPath):
                return self._driver.rowcount(connection, statement, params, by_keys=by_keys)
        return connection.execute(statement, params).rowcount

    def save(
        self,
        recording: Recording,
        *,
        expected_status: RecordingStatus,
        previous: Recording | None = None,
        expected_lease: dt.datetime | None = None,
        audit: AuditEntry | None = None,
    ) -> bool:
        """Write ``recording`` if the stored one is live and in ``expected_status``.

        One conditional ``UPDATE``; returns whether it changed the row. With
        ``audit``, the entry's ``INSERT`` follows in the same transaction when
        the row changed: both are committed, or (the insert failing) neither. With
        ``previous`` (the recording as it was loaded), the statement is
        ``UPDATE ... SET <the columns that differ from previous> WHERE id =
        :id AND status = :expected AND NOT is_deleted``, so a concurrent
        change to other columns (a worker's lease) is kept; without it, every
        column is written. With ``expected_lease`` the ``WHERE`` also asks
        ``lease_expires_at = :expected_lease`` (a worker's claim still holds).
        A write that replaces ``multipart_upload_id`` also asks that the stored
        one is still ``previous``'s.
        The storage key and the idempotency key never change: saving a
        recording whose keys differ from ``previous``'s or the stored ones
        raises ``ValueError``.
        """
        statements = self._statements
        leased = expected_lease is not None
        if previous is not None:
            _check_same_keys(recording, previous)
            changed = changed_columns(recording, previous)
            row = to_row(recording)
            params = {f"v_{name}": row[name] for name in changed}
            params["v_id"] = recording.id
            params["w_status"] = RecordingStatus(expected_status).value
            if leased:
                params["w_lease"] = to_db_time(expected_lease)
            if "multipart_upload_id" in changed:
                params["w_upload_id"] = previous.multipart_upload_id
            statement = statements.transition(changed, leased=leased)
            with self._lock, translate_errors("save"), self._writer(audit).begin() as connection:
                if self._rowcount(connection, statement, params) != 1:
                    return False
                self._audit_statements.append(connection, audit)
                return True
        params = {f"v_{name}": value for name, value in to_row(recording).items()}
        params["w_status"] = RecordingStatus(expected_status).value
        if leased:
            params["w_lease"] = to_db_time(expected_lease)
        update = statements.update_leased if leased else statements.update
        with self._lock, translate_errors("save"), self._writer(audit).begin() as connection:
            if connection.execute(update, params).rowcount == 1:
                self._audit_statements.append(connection, audit)
                return True
            stored = connection.execute(statements.keys_of, {"id": recording.id}).first()
        if stored is not None and tuple(stored) != (recording.s3_key, recording.idempotency_key):
            _keys_never_change()
        return False

    def _writer(self, audit: AuditEntry | None) -> sa.Engine:
        """Return the engine a write runs on: one statement needs no transaction; two do."""
        return self._single if audit is None else self._engine


def _check_same_keys(recording: Recording, previous: Recording) -> None:
    """Raise ``ValueError`` unless ``recording`` is ``previous`` with the same keys."""
    if (recording.id, recording.s3_key, recording.idempotency_key) != (
        previous.id,
        previous.s3_key,
        previous.idempotency_key,
    ):
        _keys_never_change()


def _keys_never_change() -> NoReturn:
    msg = "a recording's storage key and idempotency key never change"
    raise ValueError(msg)
