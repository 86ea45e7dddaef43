"""The per-request statements on the driver's cursor: where they run there, and that it is exact.

``get``, ``add`` and ``save``'s transitions skip SQLAlchemy's execution on
PostgreSQL with psycopg 3 when every column passes through unchanged (see
``repositories/sqlalchemy/driver.py``). SQLAlchemy's ``before_cursor_execute``
event fires only for statements it executes, so counting it tells the paths
apart.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import sqlalchemy.event
from sqlalchemy.dialects import postgresql

from helppet_recordings.errors import DuplicateRecordingError
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
    seen: list[str] = []

    def record(*args: Any) -> None:
        seen.append(args[2])

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)


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
        assert len(seen) == 1  # the listener does see SQLAlchemy's executions
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
    """A driver error runs the statement again through SQLAlchemy: same error, same details."""
    with SqlAlchemyRepository.from_url(shared_postgres_url) as repository:
        first = make_recording()
        repository.add(first)
        with (
            sqlalchemy_statements(repository.engine) as seen,
            pytest.raises(DuplicateRecordingError) as caught,
        ):
            repository.add(make_recording(s3_key=first.s3_key))
        assert caught.value.details["field"] == "s3_key"
        assert len(seen) == 1 and seen[0].startswith("INSERT")
        assert repository.get(first.id) == first


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
