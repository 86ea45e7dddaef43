"""Database errors never show a recording's personal values, nor do the engines' logs.

A write the database refuses (one that waits past its lock timeout, one that
breaks a constraint the host added to its table) raises a ``DATABASE_*``
error chained to SQLAlchemy's, which a host logs with its traceback. The
statement's parameters, and the row PostgreSQL quotes when a constraint
fails, hold the original filename, the recording metadata and the
transcript, so neither the error, nor anything chained to it, may show them.
"""

from __future__ import annotations

import contextlib
import functools
import sqlite3
import traceback
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import sqlalchemy.event

from helppet_recordings.environment import DeploymentSettings, build_repository
from helppet_recordings.errors import (
    RecordingError,
    RepositoryError,
    RepositoryUnavailableError,
    UploadVerificationError,
)
from helppet_recordings.models import Recording
from helppet_recordings.repositories.sqlalchemy import (
    SqlAlchemyRepository,
    define_recordings_table,
    translate_errors,
)
from helppet_recordings.repositories.sqlalchemy.engine import build_engine
from helppet_recordings.status import RecordingStatus
from helppet_recordings.testing.factories import make_recording
from tests.integration.conftest import database_url, empty_database_url
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
        # hide_parameters=False is for SQLAlchemy's statement log: the repository's
        # errors drop the values whatever the engine says.
        assert_shows_no_personal_values(shown, "INSERT INTO recordings")


# ------------------------------------------------------------- a host's own constraints

HOST_CHECK = "host_transcript_length"
"""The CHECK constraint a host put on its table: transcripts of at most 40 characters."""


def host_table() -> tuple[sa.MetaData, sa.Table]:
    """A host's recordings table that requires an appointment and caps transcripts.

    A normal save breaks either: PostgreSQL then quotes the whole row
    ("Failing row contains (...)") in the error's DETAIL.
    """
    host = sa.MetaData()
    table = define_recordings_table(host)
    table.c.appointment_id.nullable = False
    table.append_constraint(sa.CheckConstraint("length(transcript_text) <= 40", name=HOST_CHECK))
    return host, table


@contextlib.contextmanager
def host_repository(engine_kind: str, url: str, table: sa.Table) -> Iterator[SqlAlchemyRepository]:
    """The repository on the package's engine, or on a host's own one (parameters not hidden)."""
    if engine_kind == "package":
        with SqlAlchemyRepository.from_url(url, table=table) as repository:
            yield repository
        return
    engine = sa.create_engine(url)
    try:
        assert engine.hide_parameters is False
        yield SqlAlchemyRepository(engine, table=table)
    finally:
        engine.dispose()


def refused(write: Callable[[], object]) -> RecordingError:
    """Run ``write``, which the database refuses; return the error it raises."""
    with pytest.raises(RepositoryError) as caught:
        write()
    assert not isinstance(caught.value, RepositoryUnavailableError)
    return caught.value


def assert_keeps_only_names(
    error: RecordingError, recording: Recording, statement: str, names: list[str]
) -> None:
    """The whole logged traceback names what failed, and holds no value of the row or statement."""
    logged = "".join(traceback.format_exception(error))
    shown = everything_shown(error)  # the traceback, and every attribute in the chain
    assert markers_in(shown) == [], logged
    assert str(recording.recorded_by_user_id) not in shown  # nor any other parameter
    assert "[parameters:" not in shown, logged
    for name in [statement, *names]:
        assert name in logged, logged
    cause = error.__cause__
    assert isinstance(cause, sa.exc.StatementError)
    assert cause is error.__context__
    assert cause.params is None


@pytest.mark.parametrize("engine_kind", ["package", "host"])
@pytest.mark.parametrize("kind", ["sqlite-file", "postgresql", "postgresql-sqlalchemy"])
def test_a_host_constraint_failure_shows_no_personal_values(
    kind: str, engine_kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """A NOT NULL and a CHECK the host added: the chain names them, not the row's values.

    On PostgreSQL the INSERT and the transition run on the driver's cursor
    (``postgresql``) or, with a tracing listener, through SQLAlchemy's
    execution (``postgresql-sqlalchemy``); the full UPDATE always runs through
    SQLAlchemy. The host's own engine does not hide parameters.
    """
    url = empty_database_url(kind.removesuffix("-sqlalchemy"), request, tmp_path)
    host, table = host_table()
    postgres = kind != "sqlite-file"
    with host_repository(engine_kind, url, table) as repository:
        host.create_all(repository.engine)
        if kind == "postgresql-sqlalchemy":
            sa.event.listen(repository.engine, "before_cursor_execute", lambda *_: None)
        stored = personal_recording().copy(appointment_id=uuid.uuid4())
        repository.add(stored)

        unassigned = personal_recording()
        with sqlalchemy_statements(repository.engine) as executed:
            error = refused(lambda: repository.add(unassigned))
        assert (executed == []) is (kind == "postgresql")  # the INSERT ran on the driver
        names = ["NotNullViolation", "23502"] if postgres else ["NOT NULL constraint failed"]
        assert_keeps_only_names(
            error, unassigned, "INSERT INTO recordings", ["appointment_id", *names]
        )
        assert repository.get(unassigned.id) is None

        moved = transcribed(stored)
        names = ["CheckViolation", "23514"] if postgres else ["CHECK constraint failed"]
        for previous in (stored, None):
            save = functools.partial(
                repository.save, moved, expected_status=RecordingStatus.UPLOADING, previous=previous
            )
            error = refused(save)
            assert_keeps_only_names(error, stored, "UPDATE recordings", [HOST_CHECK, *names])
            if postgres:  # what a handler reading psycopg's diagnostics finds
                assert isinstance(error.__cause__, sa.exc.DBAPIError)
                diag: Any = getattr(error.__cause__.orig, "diag", None)
                assert (diag.sqlstate, diag.table_name, diag.constraint_name) == (
                    "23514",
                    "recordings",
                    HOST_CHECK,
                )
                assert diag.message_detail is None
        assert repository.get(stored.id) == stored


@pytest.mark.parametrize(
    ("using", "reason"),
    [
        ("", "RaiseException (P0001)"),
        (" USING ERRCODE = 'check_violation'", "CheckViolation (23514)"),
        (" USING ERRCODE = 'undefined_table'", "UndefinedTable (42P01)"),
    ],
    ids=["default", "check_violation", "undefined_table"],
)
def test_a_host_trigger_quoting_the_row_shows_no_personal_values(
    request: pytest.FixtureRequest, tmp_path: Path, using: str, reason: str
) -> None:
    """A host trigger's RAISE may quote the row, under any SQLSTATE it picks: withheld."""
    url = empty_database_url("postgresql", request, tmp_path)
    host, table = host_table()
    with SqlAlchemyRepository.from_url(url, table=table) as repository:
        host.create_all(repository.engine)
        with repository.engine.begin() as connection:
            connection.execute(
                sa.text(
                    "CREATE FUNCTION host_refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                    f"RAISE EXCEPTION 'refused: %', NEW.original_filename{using}; END $$"
                )
            )
            connection.execute(
                sa.text(
                    "CREATE TRIGGER host_refuse BEFORE INSERT ON recordings "
                    "FOR EACH ROW EXECUTE FUNCTION host_refuse()"
                )
            )
        recording = personal_recording().copy(appointment_id=uuid.uuid4())
        error = refused(lambda: repository.add(recording))
        assert error.details["reason"] == reason
        name, state = reason.removesuffix(")").split(" (")
        assert_keeps_only_names(
            error, recording, "INSERT INTO recordings", [name, state, "withheld"]
        )


def test_a_package_error_being_handled_keeps_its_message() -> None:
    """An error of the package's own that a database failure interrupted is not withheld.

    What is chained to it is: a driver's or a service's error may quote a value.
    """
    handled = UploadVerificationError("The stored file is not audio", reason="signature")
    handled.__cause__ = ValueError(f"bad answer for {ORIGINAL_FILENAME}")
    failure = sa.exc.OperationalError("UPDATE recordings", {}, sqlite3.OperationalError("gone"))
    failure.__context__ = handled
    with pytest.raises(RecordingError) as caught, translate_errors("save"):
        raise failure
    assert caught.value.__cause__ is failure
    assert failure.__context__ is handled
    logged = "".join(traceback.format_exception(caught.value))
    assert "The stored file is not audio" in logged
    assert ORIGINAL_FILENAME not in logged
    assert markers_in(everything_shown(caught.value)) == []


def test_values_anywhere_in_the_chain_are_withheld() -> None:
    """A value in a conversion error, a chained error or params never survives translation."""
    conversion = UnicodeEncodeError("ascii", ORIGINAL_FILENAME, 0, 1, "not ASCII")
    statement = "INSERT INTO recordings (original_filename) VALUES (?)"
    raised = sa.exc.StatementError(
        f"(builtins.UnicodeEncodeError) {conversion}",
        statement,
        {"original_filename": ORIGINAL_FILENAME},
        conversion,
    )
    raised.__cause__ = conversion
    conversion.__context__ = ValueError(f"cannot store {TRANSCRIPT}")
    with pytest.raises(RepositoryError) as caught, translate_errors("add"):
        raise raised
    shown = everything_shown(caught.value)
    assert markers_in(shown) == [], shown
    assert caught.value.__cause__ is raised
    assert raised.params is None
    logged = "".join(traceback.format_exception(caught.value))
    for name in (statement, "UnicodeEncodeError", "ValueError", "withheld"):
        assert name in logged, logged
