"""Statistics in SQL equal the in-memory twin's, on SQLite and PostgreSQL, for generated rows.

Hypothesis generates recordings (statuses, verification, sizes, durations,
processing times to the microsecond, deletions) and a window; the same rows go
into an ``InMemoryRepository`` and into the SQL database, and the two
``stats()`` must agree: counts exactly, figures within floating tolerance.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helppet_recordings import (
    InMemoryRepository,
    InMemoryStorage,
    RecordingService,
    RecordingSettings,
)
from helppet_recordings.models import Recording
from helppet_recordings.ports import RecordingRepository
from helppet_recordings.repositories.sqlalchemy import SqlAlchemyRepository
from helppet_recordings.stats import Distribution, RepositoryStats
from helppet_recordings.status import RecordingStatus
from helppet_recordings.testing.clock import FakeClock
from helppet_recordings.testing.factories import BASE_TIME, make_recording
from tests.integration.conftest import database_url

DISTRIBUTIONS = (
    "file_size_bytes",
    "duration_seconds",
    "audio_duration_seconds",
    "processing_seconds",
)
MICROSECOND = dt.timedelta(microseconds=1)


@st.composite
def recordings(draw: st.DrawFn) -> Recording:
    """One recording in a consistent state (verified ones have a size; transcribed ones times)."""
    status = draw(st.sampled_from(RecordingStatus))
    verified = status not in {RecordingStatus.UPLOADING, RecordingStatus.FAILED} or (
        status is RecordingStatus.FAILED and draw(st.booleans())
    )
    created = BASE_TIME + draw(st.integers(0, 10_000)) * dt.timedelta(minutes=1) + MICROSECOND
    fields: dict[str, object] = {
        "status": status,
        "created_at": created,
        "is_deleted": draw(st.booleans()),
    }
    seconds = st.floats(0, 86_400, allow_nan=False, allow_infinity=False)
    if verified:
        fields["verified_at"] = created
        fields["file_size_bytes"] = draw(st.integers(1, 2**31 - 1))
        fields["duration_seconds"] = draw(st.none() | seconds)
        fields["audio_duration_seconds"] = draw(st.none() | seconds)
    if status in {RecordingStatus.TRANSCRIBED, RecordingStatus.FAILED, RecordingStatus.PROCESSING}:
        started = created + draw(st.integers(0, 10**12)) * MICROSECOND
        fields["processing_started_at"] = started
        if status is not RecordingStatus.PROCESSING:
            fields["processing_completed_at"] = started + draw(st.integers(0, 10**11)) * MICROSECOND
    return make_recording(**fields)


windows = st.tuples(
    st.none() | st.integers(0, 10_000).map(lambda m: BASE_TIME + dt.timedelta(minutes=m)),
    st.none() | st.integers(0, 10_000).map(lambda m: BASE_TIME + dt.timedelta(minutes=m)),
)


@pytest.fixture(params=["sqlite-memory", "postgresql"], scope="module")
def sql_stats_repository(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SqlAlchemyRepository]:
    """One migrated SQL repository per backend for the module (emptied before each example)."""
    url = database_url(request.param, request, tmp_path_factory.mktemp("stats"))
    with SqlAlchemyRepository.from_url(url) as repository:
        repository.create_schema()
        yield repository


def _assert_same_distribution(name: str, sql: Distribution, python: Distribution) -> None:
    assert sql.count == python.count, name
    for figure in ("min", "p50", "p90", "p99", "max", "mean"):
        expected = getattr(python, figure)
        found = getattr(sql, figure)
        if expected is None:
            assert found is None, (name, figure)
        else:
            assert found == pytest.approx(expected, rel=1e-9, abs=1e-6), (name, figure)


def _assert_same(sql: RepositoryStats, python: RepositoryStats) -> None:
    assert sql.by_status == python.by_status
    assert sql.uploads == python.uploads
    for name in DISTRIBUTIONS:
        _assert_same_distribution(name, getattr(sql, name), getattr(python, name))


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(rows=st.lists(recordings(), max_size=40), window=windows)
def test_sql_stats_equal_the_python_twin(
    sql_stats_repository: SqlAlchemyRepository,
    rows: list[Recording],
    window: tuple[dt.datetime | None, dt.datetime | None],
) -> None:
    """Whatever the rows and the window, SQL and Python compute the same statistics."""
    with sql_stats_repository.engine.begin() as connection:
        connection.execute(sa.delete(sql_stats_repository.table))
    twin = InMemoryRepository()
    for recording in rows:
        twin.add(recording)
        sql_stats_repository.add(recording)
    since, until = window
    _assert_same(
        sql_stats_repository.stats(since=since, until=until),
        twin.stats(since=since, until=until),
    )


@pytest.mark.parametrize("kind", ["memory", "sqlite-memory", "postgresql"])
def test_an_upload_deleted_before_it_arrived_is_never_in_flight(
    request: pytest.FixtureRequest, tmp_path: Path, kind: str
) -> None:
    """Initiated, deleted, never swept, purged: counted failed without audio, on every backend."""
    repository: RecordingRepository
    if kind == "memory":
        repository = InMemoryRepository()
    else:
        sql = SqlAlchemyRepository.from_url(database_url(kind, request, tmp_path))
        request.addfinalizer(sql.close)
        sql.create_schema()
        repository = sql
    clock = FakeClock()
    service = RecordingService(InMemoryStorage(), repository, RecordingSettings(), clock=clock)
    user = make_recording().recorded_by_user_id
    ticket = service.initiate_upload(user, {"filename": "a.m4a", "content_type": "audio/mp4"})
    in_flight = service.initiate_upload(user, {"filename": "b.m4a", "content_type": "audio/mp4"})
    service.delete_recording(user, ticket.recording_id)
    assert service.stats().uploads.uploading == 1  # the live one only
    clock.advance(days=400)
    service.delete_recording(user, in_flight.recording_id)  # past its deadline, never swept
    clock.advance(seconds=1)
    assert service.expire_stale_uploads() == 0
    assert service.purge_deleted(retention_days=0) == 2
    stats = service.stats()
    assert stats.by_status[RecordingStatus.UPLOADING] == 0
    assert stats.by_status[RecordingStatus.FAILED] == 2
    assert (stats.uploads.uploading, stats.uploads.failed_without_audio) == (0, 2)
    assert stats.upload_success_rate == 0.0


@pytest.mark.parametrize(("session_work_mem", "during"), [("4MB", "64MB"), ("256MB", "256MB")])
def test_postgres_stats_raise_work_mem_for_their_transaction_only(
    request: pytest.FixtureRequest, tmp_path: Path, session_work_mem: str, during: str
) -> None:
    """PostgreSQL stats() sort with work_mem of at least 64MB; the session's setting comes back."""
    url = database_url("postgresql", request, tmp_path)
    seen: list[str] = []
    with SqlAlchemyRepository.from_url(
        url,
        pool_size=1,
        max_overflow=0,
        connect_args={"options": f"-c work_mem={session_work_mem}"},
    ) as repository:
        repository.add(make_recording(status=RecordingStatus.UPLOADED, verified_at=BASE_TIME))

        def look(connection: sa.Connection, cursor: object, statement: str, *_: object) -> None:
            if "percentile_cont" in statement:
                driver = connection.connection.driver_connection
                seen.append(driver.execute("SHOW work_mem").fetchone()[0])  # type: ignore[union-attr]

        sa.event.listen(repository.engine, "after_cursor_execute", look)
        stats = repository.stats(since=None, until=None)
        with repository.engine.connect() as connection:  # the same pooled connection
            after = connection.exec_driver_sql("SHOW work_mem").scalar_one()
    assert stats.uploads.verified == 1
    assert seen == [during]
    assert after == session_work_mem
