"""The per-request statements on the driver's cursor: where they run there, and that it is exact.

``get``, ``add`` and ``save``'s transitions skip SQLAlchemy's execution on
PostgreSQL with psycopg 3 when every column passes through unchanged and
nobody watches the engine's executions (see
``repositories/sqlalchemy/driver.py``). The tests tell the paths apart by
spying on the dialect's ``do_execute``, through which SQLAlchemy sends every
statement it executes: an event listener would itself turn the driver path off.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import sqlalchemy as sa
import sqlalchemy.event
from sqlalchemy.dialects import postgresql

from helppet_recordings.errors import (
    DuplicateRecordingError,
    RepositoryError,
    RepositoryUnavailableError,
)
from helppet_recordings.models import Recording
from helppet_recordings.repositories.sqlalchemy import SqlAlchemyRepository, define_recordings_table
from helppet_recordings.repositories.sqlalchemy.driver import DriverPath, driver_path
from helppet_recordings.repositories.sqlalchemy.schema import recordings
from helppet_recordings.status import RecordingStatus
from helppet_recordings.testing.factories import BASE_TIME, make_recording

OFFLINE_POSTGRES = "postgresql+psycopg://user@127.0.0.1:1/none"


@contextmanager
def sqlalchemy_statements(engine: sa.Engine) -> Iterator[list[str]]:
    """Collect the SQL of every statement SQLAlchemy executes on ``engine`` in the block."""
    with engine.connect():
        pass  # the first connection's own queries (server version, settings) are not the block's
    dialect = engine.dialect
    with mock.patch.object(dialect, "do_execute", wraps=dialect.do_execute) as spy:
        seen: list[str] = []
        yield seen
        seen.extend(call.args[1] for call in spy.call_args_list)


def full_recording() -> Recording:
    """A recording with a value of every column type set (times, floats, bools, JSON, ints)."""
    return make_recording(
        appointment_id=uuid.uuid4(),
        visit_id=uuid.uuid4(),
        duration_seconds=12.25,
        file_size_bytes=4096,
        recording_metadata={"device": "iPhone", "takes": [1, 2]},
        content_sha256="ab" * 32,
        multipart_size_bytes=3 * 2**33,
        processing_started_at=BASE_TIME + dt.timedelta(seconds=1, microseconds=7),
    )


def exercise(repository: SqlAlchemyRepository) -> Recording:
    """Add, read and move one recording through a transition and a soft delete; return it."""
    recording = full_recording()
    repository.add(recording)
    assert repository.get(recording.id) == recording
    uploaded = recording.copy(
        status=RecordingStatus.UPLOADED,
        file_size_bytes=5000,
        verified_at=BASE_TIME + dt.timedelta(minutes=2),
        checksum_status="verified",
    )
    assert repository.save(uploaded, expected_status=RecordingStatus.UPLOADING, previous=recording)
    assert not repository.save(
        uploaded, expected_status=RecordingStatus.UPLOADING, previous=recording
    )
    deleted = uploaded.copy(is_deleted=True, deleted_at=BASE_TIME + dt.timedelta(hours=1))
    assert repository.save(deleted, expected_status=RecordingStatus.UPLOADED, previous=uploaded)
    assert repository.get(recording.id) == deleted
    assert repository.get(uuid.uuid4()) is None
    return deleted


def test_postgres_runs_get_add_and_transitions_on_the_driver(shared_postgres_url: str) -> None:
    """On PostgreSQL + psycopg those statements bypass SQLAlchemy's execution, values exact."""
    with SqlAlchemyRepository.from_url(shared_postgres_url) as repository:
        with sqlalchemy_statements(repository.engine) as seen:
            stored = exercise(repository)
        assert seen == []
        with sqlalchemy_statements(repository.engine) as seen, repository.engine.connect() as db:
            row = db.execute(sa.select(recordings).where(recordings.c.id == stored.id)).one()
        assert len(seen) == 1  # the spy does see SQLAlchemy's executions
        assert row.recording_metadata == '{"device":"iPhone","takes":[1,2]}'
        assert row.is_deleted is True


def test_sqlite_keeps_sqlalchemy_execution(tmp_path: Path) -> None:
    """SQLite stores times and UUIDs through SQLAlchemy's conversions: no driver path."""
    url = f"sqlite:///{tmp_path / 'r.db'}"
    with SqlAlchemyRepository.from_url(url) as repository:
        repository.create_schema()
        assert driver_path(repository.engine.dialect, repository.table) is None
        with sqlalchemy_statements(repository.engine) as seen:
            exercise(repository)
        assert len(seen) >= 6


def test_duplicate_on_the_driver_is_the_usual_error(shared_postgres_url: str) -> None:
    """A driver error is SQLAlchemy's error for it, translated as usual; nothing is sent twice."""
    with SqlAlchemyRepository.from_url(shared_postgres_url) as repository:
        first = make_recording()
        repository.add(first)
        with (
            sqlalchemy_statements(repository.engine) as seen,
            pytest.raises(DuplicateRecordingError) as caught,
        ):
            repository.add(make_recording(s3_key=first.s3_key))
        assert caught.value.details["field"] == "s3_key"
        assert isinstance(caught.value.__cause__, sa.exc.IntegrityError)
        assert seen == []
        assert repository.get(first.id) == first


def test_a_lock_timeout_on_the_driver_is_waited_for_once(shared_postgres_url: str) -> None:
    """A transition meeting lock_timeout is DATABASE_UNAVAILABLE without being sent again."""
    with SqlAlchemyRepository.from_url(
        shared_postgres_url, connect_args={"options": "-c lock_timeout=100"}
    ) as repository:
        recording = make_recording()
        repository.add(recording)
        moved = recording.copy(status=RecordingStatus.UPLOADED, file_size_bytes=3)
        with repository.engine.connect() as holder:
            holder.execute(
                sa.text("SELECT 1 FROM recordings WHERE id = :id FOR UPDATE"), {"id": recording.id}
            )
            with (
                sqlalchemy_statements(repository.engine) as seen,
                pytest.raises(RepositoryUnavailableError) as caught,
            ):
                repository.save(
                    moved, expected_status=RecordingStatus.UPLOADING, previous=recording
                )
            holder.rollback()
        assert seen == []
        assert caught.value.details["reason"].endswith("(55P03)")
        assert repository.save(moved, expected_status=RecordingStatus.UPLOADING, previous=recording)


def test_a_value_that_fails_its_conversion_is_the_usual_error(shared_postgres_url: str) -> None:
    """A bind value the driver path cannot convert is reported by SQLAlchemy, as without it."""
    with SqlAlchemyRepository.from_url(shared_postgres_url) as repository:
        broken = make_recording(is_deleted="yes")
        with pytest.raises(RepositoryError) as caught:
            repository.add(broken)
        assert isinstance(caught.value.__cause__, sa.exc.StatementError)
        assert repository.get(broken.id) is None


def test_listeners_and_statement_logs_see_every_statement(
    shared_postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Tracing (cursor-execute listeners) and the engine's log see the statements the path skips."""
    with SqlAlchemyRepository.from_url(shared_postgres_url) as repository:
        traced: list[str] = []

        def trace(*args: Any) -> None:
            traced.append(args[2])

        sa.event.listen(repository.engine, "before_cursor_execute", trace)
        try:
            exercise(repository)
        finally:
            sa.event.remove(repository.engine, "before_cursor_execute", trace)
        assert [statement.split()[0] for statement in traced] == [
            "INSERT", "SELECT", "UPDATE", "UPDATE", "UPDATE", "SELECT", "SELECT"
        ]  # fmt: skip
        with sqlalchemy_statements(repository.engine) as seen:
            exercise(repository)
        assert seen == []  # listener gone: the driver path again
        caplog.set_level(logging.INFO, logger="sqlalchemy.engine")
        exercise(repository)
        logged = [r.getMessage() for r in caplog.records if r.name.startswith("sqlalchemy.engine")]
        assert sum(message.startswith("INSERT INTO recordings") for message in logged) == 1
        assert sum(message.startswith("UPDATE recordings") for message in logged) == 3


def test_a_schema_translate_map_keeps_sqlalchemy_execution(
    new_postgres_database: Callable[[], str],
) -> None:
    """Rows go to the schema the engine's map names (SQLAlchemy applies it as it executes)."""
    base = sa.create_engine(new_postgres_database())
    engine = base.execution_options(schema_translate_map={None: "tenant"})
    try:
        with base.begin() as connection:
            connection.execute(sa.text("CREATE SCHEMA tenant"))
        recordings.metadata.create_all(engine)
        recordings.metadata.create_all(base)  # another tenant's table, in the default schema
        repository = SqlAlchemyRepository(engine)
        exercise(repository)
        with base.connect() as connection:
            counts = [
                connection.execute(sa.select(sa.func.count()).select_from(table)).scalar()
                for table in (
                    sa.table("recordings", schema="tenant"),
                    sa.table("recordings", schema="public"),
                )
            ]
        assert counts == [1, 0]
    finally:
        base.dispose()


class Shouting(sa.types.TypeDecorator[str]):
    """A host's column type that converts in Python (upper-case on the way in)."""

    impl = sa.String(20)
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: sa.Dialect) -> str | None:
        return None if value is None else value.upper()


def host_table(column: sa.Column[Any] | None = None) -> sa.Table:
    """The recordings table in a host's metadata, with one extra column if given."""
    table = define_recordings_table(sa.MetaData())
    if column is not None:
        table.append_column(column)
    return table


@pytest.mark.parametrize(
    ("column", "why"),
    [
        (sa.Column("note", Shouting(), nullable=True), "a TypeDecorator converts in Python"),
        (sa.Column("note", sa.String(5), default="x"), "a Python-side default"),
        (sa.Column("note", sa.String(5), onupdate="y"), "a Python-side onupdate"),
        (sa.Column("ref", sa.Uuid(as_uuid=False), nullable=True), "UUIDs as strings"),
        (sa.Column("ref", sa.Uuid(native_uuid=False), nullable=True), "UUIDs stored as text"),
        (sa.Column("kind", sa.Enum("a", "b", name="kind"), nullable=True), "an Enum"),
        (sa.Column("amount", sa.Float(asdecimal=True), nullable=True), "floats as Decimal"),
        (sa.Column("price", sa.Numeric(), nullable=True), "a type not known to pass through"),
    ],
)
def test_columns_that_convert_keep_sqlalchemy_execution(column: sa.Column[Any], why: str) -> None:
    """A table with any column SQLAlchemy would convert gets no driver path."""
    engine = sa.create_engine(OFFLINE_POSTGRES)
    try:
        assert isinstance(driver_path(engine.dialect, host_table()), DriverPath)
        assert driver_path(engine.dialect, host_table(column)) is None, why
    finally:
        engine.dispose()


def test_a_schema_translate_map_means_no_driver_path() -> None:
    """The engine's schema map is applied by SQLAlchemy's execution only."""
    dialect = sa.create_engine(OFFLINE_POSTGRES).dialect
    assert isinstance(driver_path(dialect, recordings, schema_translate_map=None), DriverPath)
    assert driver_path(dialect, recordings, schema_translate_map={None: "tenant"}) is None


def test_other_postgres_drivers_keep_sqlalchemy_execution() -> None:
    """Only psycopg 3 is known to return these types as SQLAlchemy would."""
    for dialect in (postgresql.psycopg2.dialect(), postgresql.asyncpg.dialect()):  # type: ignore[no-untyped-call]
        assert driver_path(dialect, recordings) is None


def test_host_table_with_a_converting_column_round_trips(
    new_postgres_database: Callable[[], str],
) -> None:
    """On PostgreSQL, a host table with a TypeDecorator column still stores exactly."""
    engine = sa.create_engine(new_postgres_database())
    table = host_table(sa.Column("note", Shouting(), nullable=True))
    table.metadata.create_all(engine)
    try:
        repository = SqlAlchemyRepository(engine, table=table)
        with sqlalchemy_statements(engine) as seen:
            exercise(repository)
        assert len(seen) >= 6
    finally:
        engine.dispose()
