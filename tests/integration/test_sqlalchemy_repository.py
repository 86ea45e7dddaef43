"""SqlAlchemyRepository passes the repository contract on every backend, plus SQL specifics."""

from __future__ import annotations

import datetime as dt
import socket
import sqlite3
import sys
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from helppet_recordings import InMemoryStorage, RecordingService, RecordingSettings
from helppet_recordings.errors import (
    DuplicateRecordingError,
    MissingDependencyError,
    RepositoryError,
    RepositoryUnavailableError,
    UploadTimeoutError,
    ValidationError,
)
from helppet_recordings.models import RecordingFilter
from helppet_recordings.ports import RecordingRepository
from helppet_recordings.repositories.sqlalchemy import (
    SqlAlchemyRepository,
    define_recordings_table,
    recordings,
    translate_errors,
)
from helppet_recordings.status import RecordingStatus
from helppet_recordings.testing.clock import FakeClock
from helppet_recordings.testing.factories import BASE_TIME, make_recording
from helppet_recordings.testing.repository_contract import RepositoryContract
from tests.support.postgres import PostgresServer


class TestSqlAlchemyRepository(RepositoryContract):
    @pytest.fixture
    def repository(self, sql_repository: SqlAlchemyRepository) -> RecordingRepository:
        """A migrated, empty SQL repository (SQLite memory, SQLite file, PostgreSQL)."""
        return sql_repository


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ------------------------------------------------------------------------ unreachable


def test_unreachable_postgres_is_retryable_not_a_crash() -> None:
    """A PostgreSQL URL on a closed port raises DATABASE_UNAVAILABLE with retry_after."""
    url = f"postgresql://postgres@127.0.0.1:{_closed_port()}/recordings"
    with SqlAlchemyRepository.from_url(url) as repository:
        calls: list[Callable[[], object]] = [
            lambda: repository.get(uuid.uuid4()),
            lambda: repository.add(make_recording()),
            repository.create_schema,
        ]
        for call in calls:
            with pytest.raises(RepositoryUnavailableError) as caught:
                call()
            error = caught.value
            assert error.error_code == "DATABASE_UNAVAILABLE"
            assert error.http_status == 503
            assert error.retry_after > 0
            assert isinstance(error.__cause__, sa.exc.OperationalError)
            # Nothing about the server's address or the SQL reaches the client.
            wire = str(error.to_dict())
            assert "127.0.0.1" not in wire
            assert "SELECT" not in wire


def test_pool_exhaustion_is_retryable(tmp_path: Path) -> None:
    """Waiting too long for a pooled connection raises DATABASE_UNAVAILABLE."""
    url = f"sqlite:///{tmp_path / 'pool.db'}"
    with SqlAlchemyRepository.from_url(
        url, pool_size=1, max_overflow=0, pool_timeout=0.05
    ) as repository:
        repository.create_schema()
        with repository.engine.connect(), pytest.raises(RepositoryUnavailableError) as caught:
            repository.get(uuid.uuid4())
        assert isinstance(caught.value.__cause__, sa.exc.TimeoutError)


def test_locked_sqlite_database_is_retryable_and_changes_nothing(tmp_path: Path) -> None:
    """A writer blocked past the busy timeout gets DATABASE_UNAVAILABLE (retry_after=1)."""
    path = tmp_path / "locked.db"
    with SqlAlchemyRepository.from_url(f"sqlite:///{path}", sqlite_busy_timeout=0.05) as repo:
        repo.create_schema()
        recording = make_recording()
        blocker = sqlite3.connect(path, isolation_level=None)
        try:
            blocker.execute("BEGIN EXCLUSIVE")
            with pytest.raises(RepositoryUnavailableError) as caught:
                repo.add(recording)
            blocker.execute("ROLLBACK")
        finally:
            blocker.close()
        assert caught.value.retry_after == 1
        assert "locked" in str(caught.value.__cause__)
        assert repo.get(recording.id) is None
        repo.add(recording)
        assert repo.get(recording.id) == recording


def test_postgres_lock_timeout_is_retryable(shared_postgres_url: str) -> None:
    """A save that hits lock_timeout (SQLSTATE 55P03) is DATABASE_UNAVAILABLE, then succeeds."""
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
            with pytest.raises(RepositoryUnavailableError) as caught:
                repository.save(moved, expected_status=RecordingStatus.UPLOADING)
            holder.rollback()
        assert caught.value.retry_after == 1
        assert caught.value.details["reason"].endswith("(55P03)")
        assert repository.get(recording.id) == recording
        assert repository.save(moved, expected_status=RecordingStatus.UPLOADING) is True


def test_connection_killed_by_server_is_replaced(shared_postgres_url: str) -> None:
    """Pooled connections terminated by PostgreSQL are replaced; the read that met one retries."""
    with SqlAlchemyRepository.from_url(shared_postgres_url) as repository:
        recording = make_recording()
        repository.add(recording)
        killer = sa.create_engine(shared_postgres_url, poolclass=sa.pool.NullPool)
        try:
            with killer.begin() as connection:
                killed = connection.execute(
                    sa.text(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
                ).scalar_one()
        finally:
            killer.dispose()
        assert killed >= 1
        assert repository.get(recording.id) == recording


# -------------------------------------------------------------------- error translation


def test_missing_schema_is_a_permanent_error(empty_engine_url: str) -> None:
    """A database without the table is DATABASE_ERROR (e.g. 42P01), not a retryable error."""
    with SqlAlchemyRepository.from_url(empty_engine_url) as repository:
        with pytest.raises(RepositoryError) as caught:
            repository.get(uuid.uuid4())
        assert not isinstance(caught.value, RepositoryUnavailableError)
        assert caught.value.error_code == "DATABASE_ERROR"
        assert isinstance(caught.value.__cause__, sa.exc.DBAPIError)
        if repository.engine.dialect.name == "postgresql":
            assert caught.value.details["reason"] == "UndefinedTable (42P01)"


def test_translate_errors_maps_each_kind() -> None:
    """The one translation point: unique -> duplicate, unavailable -> 503, others -> 500."""
    orig = Exception("boom")
    cases: list[tuple[Exception, type[Exception]]] = [
        (
            sa.exc.IntegrityError("INSERT", {}, Exception("UNIQUE constraint failed: r.s3_key")),
            DuplicateRecordingError,
        ),
        (sa.exc.IntegrityError("INSERT", {}, Exception("FOREIGN KEY failed")), RepositoryError),
        (
            sa.exc.OperationalError("SELECT", {}, Exception("connection refused")),
            RepositoryUnavailableError,
        ),
        (sa.exc.OperationalError("SELECT", {}, Exception("no such table: x")), RepositoryError),
        (sa.exc.InterfaceError("SELECT", {}, orig), RepositoryUnavailableError),
        (sa.exc.ProgrammingError("SELECT", {}, orig), RepositoryError),
        (sa.exc.TimeoutError("pool"), RepositoryUnavailableError),
        (sa.exc.ArgumentError("bad"), RepositoryError),
    ]
    for raised, expected in cases:
        with pytest.raises(expected) as caught, translate_errors("test"):
            raise raised
        assert type(caught.value) is expected
        assert caught.value.__cause__ is raised


def test_foreign_key_violation_is_a_repository_error(tmp_path: Path) -> None:
    """An integrity failure that is not a duplicate becomes DATABASE_ERROR."""
    host = sa.MetaData()
    users = sa.Table("users", host, sa.Column("id", sa.Uuid(), primary_key=True))
    table = define_recordings_table(host, users_table=users)
    with SqlAlchemyRepository.from_url(f"sqlite:///{tmp_path / 'fk.db'}", table=table) as repo:
        host.create_all(repo.engine)
        with pytest.raises(RepositoryError) as caught:
            repo.add(make_recording())
        assert caught.value.details["reason"] == "IntegrityError"


def test_unreadable_row_is_a_repository_error(sql_repository: SqlAlchemyRepository) -> None:
    """A row another program wrote with an unknown status is DATABASE_ERROR, not a crash."""
    recording = make_recording()
    sql_repository.add(recording)
    with sql_repository.engine.begin() as connection:
        connection.execute(
            recordings.update().where(recordings.c.id == recording.id).values(status="bogus")
        )
    with pytest.raises(RepositoryError, match="could not be read"):
        sql_repository.get(recording.id)


# ------------------------------------------------------------------------ semantics


def test_times_in_any_offset_come_back_as_utc(sql_repository: SqlAlchemyRepository) -> None:
    """A datetime with a +05:30 offset is stored as the same instant and read back in UTC."""
    india = dt.timezone(dt.timedelta(hours=5, minutes=30))
    created = BASE_TIME.astimezone(india)
    recording = make_recording(created_at=created, updated_at=created)
    sql_repository.add(recording)
    loaded = sql_repository.get(recording.id)
    assert loaded is not None
    assert loaded.created_at == BASE_TIME
    assert loaded.created_at.tzinfo is dt.UTC
    stale = sql_repository.list_stale_uploads(
        now=(BASE_TIME + dt.timedelta(hours=2)).astimezone(india), limit=5
    )
    assert [r.id for r in stale] == [recording.id]


def test_naive_datetimes_are_refused(sql_repository: SqlAlchemyRepository) -> None:
    """Naive datetimes are ambiguous; the repository refuses them instead of guessing."""
    naive = BASE_TIME.replace(tzinfo=None)
    with pytest.raises(ValueError, match="timezone-aware"):
        sql_repository.add(make_recording(created_at=naive, updated_at=naive))


def test_save_never_changes_the_storage_key(sql_repository: SqlAlchemyRepository) -> None:
    """Saving a recording with another storage key raises ValueError and writes nothing."""
    recording = make_recording()
    sql_repository.add(recording)
    with pytest.raises(ValueError, match="storage key"):
        sql_repository.save(
            recording.copy(s3_key="recordings/other.m4a"),
            expected_status=RecordingStatus.UPLOADING,
        )
    assert sql_repository.get(recording.id) == recording


def test_metadata_over_the_column_size_is_refused(sql_repository: SqlAlchemyRepository) -> None:
    """Metadata longer than 2000 characters of JSON is refused on every backend alike."""
    with pytest.raises(ValidationError):
        sql_repository.add(make_recording(recording_metadata={"note": "x" * 2000}))


def test_negative_paging_is_refused(sql_repository: SqlAlchemyRepository) -> None:
    """A negative limit or offset is a programming error."""
    with pytest.raises(ValueError, match="negative"):
        sql_repository.find(RecordingFilter(user_id=uuid.uuid4()), limit=-1, offset=0)


def test_total_is_counted_when_the_page_is_full_or_past_the_end(
    sql_repository: SqlAlchemyRepository,
) -> None:
    """The total is right for full pages, the last page and pages past the end."""
    user = uuid.uuid4()
    for i in range(5):
        sql_repository.add(
            make_recording(recorded_by_user_id=user, created_at=BASE_TIME + dt.timedelta(i))
        )
    pages = {
        (limit, offset): sql_repository.find(
            RecordingFilter(user_id=user), limit=limit, offset=offset
        )
        for limit, offset in [(2, 0), (2, 4), (5, 0), (3, 9), (10, 0), (0, 0)]
    }
    assert {key: page.total for key, page in pages.items()} == dict.fromkeys(pages, 5)
    assert [len(page.items) for page in pages.values()] == [2, 1, 5, 0, 5, 0]


def test_writes_are_all_or_nothing(sql_repository: SqlAlchemyRepository) -> None:
    """A failed add leaves no row behind and the repository keeps working."""
    first = make_recording()
    sql_repository.add(first)
    clash = make_recording(s3_key=first.s3_key)
    with pytest.raises(ValueError, match="storage key"):
        sql_repository.add(clash)
    assert sql_repository.get(clash.id) is None
    with sql_repository.engine.connect() as connection:
        count = connection.execute(sa.select(sa.func.count()).select_from(recordings))
        assert count.scalar_one() == 1


def test_listing_and_sweep_queries_use_the_partial_indexes(shared_engine_url: str) -> None:
    """The planner proves the partial-index predicates from the repository's own SQL."""
    with SqlAlchemyRepository.from_url(shared_engine_url) as repository:
        repository.create_schema()
        user = uuid.uuid4()
        for i in range(3):
            repository.add(
                make_recording(recorded_by_user_id=user, created_at=BASE_TIME + dt.timedelta(i))
            )
        engine = repository.engine
        captured: list[tuple[str, Any]] = []

        def capture(*args: Any) -> None:
            captured.append((args[2], args[3]))  # statement, parameters

        sa.event.listen(engine, "before_cursor_execute", capture)
        repository.find(RecordingFilter(user_id=user), limit=2, offset=0)
        repository.list_stale_uploads(now=BASE_TIME + dt.timedelta(days=9), limit=10)
        sa.event.remove(engine, "before_cursor_execute", capture)
        postgres = engine.dialect.name == "postgresql"
        plans = []
        with engine.connect() as connection:
            cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
            if postgres:
                cursor.execute("SET enable_seqscan = off")
            explain = "EXPLAIN " if postgres else "EXPLAIN QUERY PLAN "
            for statement, parameters in captured:
                cursor.execute(explain + statement, parameters)
                plans.append(" ".join(str(row) for row in cursor.fetchall()))
            cursor.close()
            connection.rollback()
    page, stale = plans  # the page statement carries its count as a subquery
    assert page.count("ix_recordings_owner_created") == 2
    assert "ix_recordings_stale_uploads" in stale
    for plan in plans:
        assert "Seq Scan" not in plan
        assert "SCAN recordings" not in plan


# ------------------------------------------------- idempotency, key walks, purge, claims


def test_idempotency_keys_are_unique_per_user(sql_repository: SqlAlchemyRepository) -> None:
    """One user cannot reuse an idempotency key; another user can; lookups find deleted ones."""
    first = make_recording(idempotency_key="retry-1")
    sql_repository.add(first)
    with pytest.raises(ValueError, match="idempotency key"):
        sql_repository.add(
            make_recording(recorded_by_user_id=first.recorded_by_user_id, idempotency_key="retry-1")
        )
    other = make_recording(idempotency_key="retry-1")
    sql_repository.add(other)
    sql_repository.add(make_recording(recorded_by_user_id=first.recorded_by_user_id))
    sql_repository.add(make_recording(recorded_by_user_id=first.recorded_by_user_id))
    assert sql_repository.find_by_idempotency_key(first.recorded_by_user_id, "retry-1") == first
    assert sql_repository.find_by_idempotency_key(other.recorded_by_user_id, "retry-1") == other
    assert sql_repository.find_by_idempotency_key(first.recorded_by_user_id, "retry-2") is None
    deleted = first.copy(is_deleted=True, deleted_at=BASE_TIME)
    assert sql_repository.save(deleted, expected_status=RecordingStatus.UPLOADING)
    assert sql_repository.find_by_idempotency_key(first.recorded_by_user_id, "retry-1") == deleted


def test_save_never_changes_the_idempotency_key(sql_repository: SqlAlchemyRepository) -> None:
    """Saving a recording with another idempotency key raises ValueError and writes nothing."""
    recording = make_recording(idempotency_key="a")
    sql_repository.add(recording)
    for changed in ("b", None):
        with pytest.raises(ValueError, match="idempotency key"):
            sql_repository.save(
                recording.copy(idempotency_key=changed), expected_status=RecordingStatus.UPLOADING
            )
    assert sql_repository.get(recording.id) == recording


def test_list_by_key_walks_every_key_in_code_point_order(
    sql_repository: SqlAlchemyRepository,
) -> None:
    """Keys under a prefix come in code point order, page by page, whatever the collation."""
    names = ["B", "a", "_", "Z", "é", "a/b", "a-b", "a0", "~", "\U0001f436", "\ud7ff", "z"]
    inside = [f"recordings/u/{name}" for name in names]
    outside = ["recordings/t/x", "recordings/u", "recordings/v/a", "recordings/u0"]
    for key in inside + outside:
        sql_repository.add(make_recording(s3_key=key))
    expected = sorted(inside)
    walked: list[str] = []
    after: str | None = None
    while page := sql_repository.list_by_key(prefix="recordings/u/", after=after, limit=5):
        walked.extend(r.s3_key for r in page)
        after = page[-1].s3_key
    assert walked == expected
    everything = sql_repository.list_by_key(prefix="", after=None, limit=100)
    assert [r.s3_key for r in everything] == sorted(inside + outside)
    assert [
        r.s3_key for r in sql_repository.list_by_key(prefix="recordings/u/", after="a", limit=3)
    ] == expected[:3]  # an ``after`` before the prefix starts at the prefix
    assert sql_repository.list_by_key(prefix="recordings/u/", after="zzz", limit=3) == []


def test_key_order_ignores_a_linguistic_database_collation(postgres_server: PostgresServer) -> None:
    """On a database whose default collation is ICU en-US, key walks stay in code point order."""
    assert postgres_server.url is not None
    admin = sa.create_engine(postgres_server.url, poolclass=sa.pool.NullPool)
    try:
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql(
                "CREATE DATABASE linguistic TEMPLATE template0 "
                "LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C'"
            )
    finally:
        admin.dispose()
    url = sa.make_url(postgres_server.url).set(database="linguistic")
    keys = [f"recordings/u/{name}" for name in ("a_b", "a-b", "a/b", "ab", "aB", "AB")]
    with SqlAlchemyRepository.from_url(url) as repository:
        repository.create_schema()
        for key in keys:
            repository.add(make_recording(s3_key=key))
        with repository.engine.connect() as connection:
            linguistic = connection.exec_driver_sql(
                "SELECT x FROM unnest(%(keys)s::text[]) AS x ORDER BY x", {"keys": keys}
            ).scalars()
            assert list(linguistic) != sorted(keys)  # the database's own order differs
        walked = repository.list_by_key(prefix="recordings/u/", after=None, limit=10)
        assert [r.s3_key for r in walked] == sorted(keys)
        after = repository.list_by_key(prefix="recordings/u/", after=sorted(keys)[2], limit=10)
        assert [r.s3_key for r in after] == sorted(keys)[3:]


def test_list_purgeable_and_mark_purged(sql_repository: SqlAlchemyRepository) -> None:
    """Deleted, unpurged recordings are listed oldest deletion first; purging happens once."""
    live = make_recording()
    deleted = [make_recording() for _ in range(3)]
    for recording in [live, *deleted]:
        sql_repository.add(recording)
    for minutes, recording in zip((30, 10, 20), deleted, strict=True):
        sql_repository.save(
            recording.copy(is_deleted=True, deleted_at=BASE_TIME + dt.timedelta(minutes=minutes)),
            expected_status=RecordingStatus.UPLOADING,
        )
    before = BASE_TIME + dt.timedelta(minutes=25)
    found = sql_repository.list_purgeable(deleted_before=before, limit=10)
    assert [r.id for r in found] == [deleted[1].id, deleted[2].id]
    assert [r.id for r in sql_repository.list_purgeable(deleted_before=before, limit=1)] == [
        deleted[1].id
    ]

    scrubbed = found[0].copy(
        original_filename=None, recording_metadata=None, purged_at=BASE_TIME + dt.timedelta(1)
    )
    assert sql_repository.mark_purged(scrubbed) is True
    assert sql_repository.get(scrubbed.id) == scrubbed
    assert sql_repository.mark_purged(scrubbed) is False
    assert sql_repository.mark_purged(live.copy(purged_at=BASE_TIME)) is False
    assert sql_repository.get(live.id) == live
    assert [r.id for r in sql_repository.list_purgeable(deleted_before=before, limit=10)] == [
        deleted[2].id
    ]


def test_from_url_uses_psycopg_for_plain_postgresql_urls() -> None:
    """``postgresql://`` means psycopg 3, a pool for a worker's threads, recycling, no pre-ping."""
    repository = SqlAlchemyRepository.from_url("postgresql://app@db.invalid/clinic")
    try:
        assert repository.engine.dialect.driver == "psycopg"
        pool = repository.engine.pool
        assert isinstance(pool, sa.pool.QueuePool)
        assert (pool.size(), pool._max_overflow, pool._pre_ping) == (40, 10, False)
        assert pool._recycle == 1800
        assert "clinic" in repr(repository)
    finally:
        repository.close()


def test_repr_masks_every_password_in_the_url() -> None:
    """The password in the user part and one in the query (?password=) both show as ***."""
    url = "postgresql://app:Hunter2@db.invalid/clinic?password=Hunter3&sslmode=require"
    repository = SqlAlchemyRepository.from_url(url)
    try:
        shown = repr(repository)
    finally:
        repository.close()
    assert "Hunter" not in shown
    assert "password=***" in shown
    assert "sslmode=require" in shown


def test_from_url_pool_settings_are_keywords() -> None:
    """Pool size, overflow, pre-ping and recycling are from_url's keyword arguments."""
    with SqlAlchemyRepository.from_url(
        "postgresql://app@db.invalid/clinic",
        pool_size=8,
        max_overflow=2,
        pool_pre_ping=True,
        pool_recycle=60,
    ) as repository:
        pool = repository.engine.pool
        assert isinstance(pool, sa.pool.QueuePool)
        assert (pool.size(), pool._max_overflow, pool._pre_ping, pool._recycle) == (8, 2, True, 60)


@pytest.mark.parametrize(
    "url", ["sqlite://", "sqlite:///:memory:", "sqlite:///file::memory:?uri=true"]
)
def test_in_memory_sqlite_is_one_database_for_all_threads(url: str) -> None:
    """An in-memory database (any spelling) is shared by every thread, as one database."""
    with SqlAlchemyRepository.from_url(url) as repository:
        repository.create_schema()
        recording = make_recording()
        worker = threading.Thread(target=repository.add, args=(recording,))
        worker.start()
        worker.join()
        assert repository.get(recording.id) == recording
        assert isinstance(repository.engine.pool, sa.pool.StaticPool)


def test_file_sqlite_uses_wal_foreign_keys_and_busy_timeout(tmp_path: Path) -> None:
    """Every file SQLite connection runs in WAL mode with foreign keys and a busy timeout."""
    url = f"sqlite:///{tmp_path / 'pragmas.db'}"
    with SqlAlchemyRepository.from_url(url, sqlite_busy_timeout=2.5) as repository:
        with repository.engine.connect() as connection:
            pragmas = {
                name: connection.exec_driver_sql(f"PRAGMA {name}").scalar_one()
                for name in ("journal_mode", "foreign_keys", "busy_timeout")
            }
        assert pragmas == {"journal_mode": "wal", "foreign_keys": 1, "busy_timeout": 2500}


def test_missing_psycopg_names_the_postgres_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without psycopg, a PostgreSQL URL says which extra to install; another driver does not."""
    monkeypatch.setitem(sys.modules, "psycopg", None)  # import psycopg now fails
    with pytest.raises(MissingDependencyError) as caught:
        SqlAlchemyRepository.from_url("postgresql://user@127.0.0.1:1/db")
    assert caught.value.details == {"package": "psycopg", "extra": "postgres"}
    monkeypatch.setitem(sys.modules, "psycopg2", None)
    with pytest.raises(ModuleNotFoundError) as other:
        SqlAlchemyRepository.from_url("postgresql+psycopg2://user@127.0.0.1:1/db")
    assert not isinstance(other.value, MissingDependencyError)


def test_sqlite_timeout_in_connect_args_wins_over_the_busy_timeout(tmp_path: Path) -> None:
    """sqlite3's own ``timeout``, given in connect_args, is the busy timeout the pragma sets."""
    url = f"sqlite:///{tmp_path / 'timeout.db'}"
    with SqlAlchemyRepository.from_url(url, connect_args={"timeout": 30}) as repository:
        with repository.engine.connect() as connection:
            busy = connection.exec_driver_sql("PRAGMA busy_timeout").scalar_one()
        assert busy == 30_000


def test_engine_kwargs_are_passed_through(tmp_path: Path) -> None:
    """Keyword arguments of from_url reach create_engine and win over its defaults."""
    url = f"sqlite:///{tmp_path / 'kwargs.db'}"
    with SqlAlchemyRepository.from_url(url, pool_size=3, poolclass=sa.pool.QueuePool) as repo:
        assert isinstance(repo.engine.pool, sa.pool.QueuePool)
        assert repo.engine.pool.size() == 3


def test_a_given_engine_is_not_disposed_by_close(tmp_path: Path) -> None:
    """``SqlAlchemyRepository(engine)`` leaves the caller's engine to the caller."""
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'own.db'}")
    try:
        repository = SqlAlchemyRepository(engine)
        repository.create_schema()
        repository.add(make_recording())
        repository.close()
        with engine.connect() as connection:
            count = connection.execute(sa.select(sa.func.count()).select_from(recordings))
            assert count.scalar_one() == 1
    finally:
        engine.dispose()


def test_create_schema_refuses_an_embedded_table(tmp_path: Path) -> None:
    """An embedded table belongs to the host's migrations, not the package's."""
    table = define_recordings_table(sa.MetaData())
    with (
        SqlAlchemyRepository.from_url(f"sqlite:///{tmp_path / 'x.db'}", table=table) as repo,
        pytest.raises(ValueError, match="host application"),
    ):
        repo.create_schema()


def test_a_swept_upload_times_out_on_completion(sql_repository: SqlAlchemyRepository) -> None:
    """After the sweeper failed an upload, every completion is UPLOAD_TIMEOUT, on each database."""
    clock = FakeClock()
    service = RecordingService(
        InMemoryStorage("helppet-audio-recordings"),
        sql_repository,
        RecordingSettings(s3_presigned_url_expiration=600),
        clock=clock,
    )
    user = uuid.uuid4()
    ticket = service.initiate_upload(user, {"filename": "a.wav", "content_type": "audio/wav"})
    clock.advance(seconds=600 + 900 + 1)
    assert service.expire_stale_uploads() == 1
    swept = sql_repository.get(ticket.recording_id)
    assert swept is not None
    assert swept.upload_expires_at == swept.updated_at == clock.now
    for _ in range(2):
        with pytest.raises(UploadTimeoutError) as info:
            service.complete_upload(user, ticket.recording_id, {"file_size_bytes": 10})
        assert info.value.details["deadline"] == clock.now.isoformat()
        assert info.value.details["current_status"] == "failed"
