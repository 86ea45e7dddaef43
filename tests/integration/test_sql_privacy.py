"""Database errors never show a recording's personal values, nor do the engines' logs.

A write the database refuses (here: one that waits past its lock timeout)
raises ``DATABASE_UNAVAILABLE`` chained to SQLAlchemy's error, which a host
logs with its traceback. The statement's parameters hold the original
filename, the recording metadata and the transcript, so neither the error,
nor anything chained to it, may show them.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import sqlalchemy.event

from helppet_recordings.environment import DeploymentSettings, build_repository
from helppet_recordings.errors import RepositoryUnavailableError
from helppet_recordings.models import Recording
from helppet_recordings.repositories.sqlalchemy import SqlAlchemyRepository
from helppet_recordings.repositories.sqlalchemy.engine import build_engine
from helppet_recordings.status import RecordingStatus
from helppet_recordings.testing.factories import make_recording
from tests.integration.conftest import database_url
from tests.integration.test_sql_driver_path import sqlalchemy_statements
from tests.support.privacy import (
    METADATA_VALUE,
    ORIGINAL_FILENAME,
    TRANSCRIPT,
    everything_shown,
    markers_in,
)

LOCK_TIMEOUT_MS = 100


def personal_recording() -> Recording:
    """A new recording whose filename and metadata name a pet, its owner and their address."""
    return make_recording(
        original_filename=ORIGINAL_FILENAME,
        recording_metadata={"owner": METADATA_VALUE, "device": "iPhone"},
    )


def transcribed(recording: Recording) -> Recording:
    """``recording`` moved on, with a transcript naming the pet, its owner and their address."""
    return recording.copy(
        status=RecordingStatus.UPLOADED,
        file_size_bytes=4096,
        transcript_text=TRANSCRIPT,
    )


def open_repository(kind: str, url: str) -> SqlAlchemyRepository:
    """The package's repository on ``url``, giving up on a held lock within 0.1 s."""
    if kind == "sqlite-file":
        return SqlAlchemyRepository.from_url(url, sqlite_busy_timeout=0.05)
    return SqlAlchemyRepository.from_url(
        url, connect_args={"options": f"-c lock_timeout={LOCK_TIMEOUT_MS}"}
    )


@contextlib.contextmanager
def writes_blocked(kind: str, url: str) -> Iterator[None]:
    """Hold a lock that makes every write to the recordings table wait, until the block ends."""
    if kind == "sqlite-file":
        blocker = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
        try:
            blocker.execute("BEGIN EXCLUSIVE")
            yield
            blocker.execute("ROLLBACK")
        finally:
            blocker.close()
        return
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as holder:
            holder.execute(sa.text("LOCK TABLE recordings IN EXCLUSIVE MODE"))
            yield
            holder.rollback()
    finally:
        engine.dispose()


def refused_write(kind: str, url: str, write: Callable[[], object]) -> str:
    """Run ``write`` while writes are blocked; return everything the error it raises shows."""
    with writes_blocked(kind, url), pytest.raises(RepositoryUnavailableError) as caught:
        write()
    return everything_shown(caught.value)


def assert_shows_no_personal_values(shown: str, statement: str) -> None:
    """The error keeps the SQL for logs, but none of the values it was run with.

    SQLAlchemy shortens a long parameter list in the middle, so the markers
    alone could miss it: no parameter list may be shown at all.
    """
    assert statement in shown  # the chained cause still says what failed
    assert "[parameters:" not in shown, shown
    assert markers_in(shown) == [], shown


@pytest.mark.parametrize("kind", ["sqlite-file", "postgresql"])
def test_a_refused_write_shows_no_personal_values(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """An INSERT and a full UPDATE that time out: no filename, metadata or transcript is shown.

    On PostgreSQL, a tracing listener makes the INSERT run through
    SQLAlchemy's execution, as it does on every driver but psycopg 3.
    """
    url = database_url(kind, request, tmp_path)
    with open_repository(kind, url) as repository:
        if kind == "sqlite-file":
            repository.create_schema()
        recording = personal_recording()
        traced: list[str] = []

        def trace(*args: Any) -> None:
            traced.append(args[2])

        sa.event.listen(repository.engine, "before_cursor_execute", trace)
        try:
            shown = refused_write(kind, url, lambda: repository.add(recording))
        finally:
            sa.event.remove(repository.engine, "before_cursor_execute", trace)
        assert any(statement.startswith("INSERT") for statement in traced)
        assert_shows_no_personal_values(shown, "INSERT INTO recordings")

        repository.add(recording)
        moved = transcribed(recording)
        shown = refused_write(
            kind,
            url,
            lambda: repository.save(moved, expected_status=RecordingStatus.UPLOADING),
        )
        assert_shows_no_personal_values(shown, "UPDATE recordings")
        assert repository.get(recording.id) == recording


def test_the_package_builds_engines_that_hide_parameters(tmp_path: Path) -> None:
    """from_url, build_engine and build_repository hide parameters unless told otherwise."""
    url = f"sqlite:///{tmp_path / 'engines.db'}"
    with SqlAlchemyRepository.from_url(url) as repository:
        assert repository.engine.hide_parameters is True
    with SqlAlchemyRepository.from_url(url, hide_parameters=False) as repository:
        assert repository.engine.hide_parameters is False
    engine = build_engine(url)
    try:
        assert engine.hide_parameters is True
    finally:
        engine.dispose()
    environment = DeploymentSettings.from_values({"DATABASE_URL": url})
    with build_repository(environment) as repository:
        assert repository.engine.hide_parameters is True


def test_a_refused_write_on_the_driver_path_shows_no_personal_values(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """On psycopg 3, an INSERT and a transition run on the driver's cursor hide their values too.

    SQLAlchemy executes neither statement (the driver path is taken), yet
    the error chained to ``DATABASE_UNAVAILABLE`` shows the engine's
    ``hide_parameters`` choice as SQLAlchemy's own would.
    """
    url = database_url("postgresql", request, tmp_path)
    with open_repository("postgresql", url) as repository:
        assert repository.engine.hide_parameters is True
        recording = personal_recording()
        with sqlalchemy_statements(repository.engine) as executed:
            shown = refused_write("postgresql", url, lambda: repository.add(recording))
        assert executed == []  # the INSERT ran on the driver
        assert_shows_no_personal_values(shown, "INSERT INTO recordings")

        repository.add(recording)
        moved = transcribed(recording)
        with sqlalchemy_statements(repository.engine) as executed:
            shown = refused_write(
                "postgresql",
                url,
                lambda: repository.save(
                    moved, expected_status=RecordingStatus.UPLOADING, previous=recording
                ),
            )
        assert executed == []  # the transition ran on the driver
        assert_shows_no_personal_values(shown, "UPDATE recordings")
        assert repository.get(recording.id) == recording

    with SqlAlchemyRepository.from_url(
        url,
        hide_parameters=False,
        connect_args={"options": f"-c lock_timeout={LOCK_TIMEOUT_MS}"},
    ) as showing:
        other = personal_recording()
        shown = refused_write("postgresql", url, lambda: showing.add(other))
        # The host's explicit choice, honoured as SQLAlchemy honours it.
        assert "[parameters: {'id': UUID(" in shown
