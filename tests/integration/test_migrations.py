"""The package's Alembic migrations on SQLite and PostgreSQL: up, compare, down, up again."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from helppet_recordings.errors import RepositoryError
from helppet_recordings.repositories.sqlalchemy import (
    ALEMBIC_VERSION_TABLE,
    AUDIT_TABLE_NAME,
    MIGRATIONS_DIR,
    SchemaUpgrade,
    SqlAlchemyRepository,
    alembic_config,
    define_recordings_table,
    metadata,
)
from helppet_recordings.repositories.sqlalchemy.migrate import (
    MIGRATION_LOCK,
    lock_for_migration,
    upgrade_to_head,
)
from helppet_recordings.repositories.sqlalchemy.schema import STATS_COLUMNS
from helppet_recordings.testing.factories import make_recording
from tests.support.migrations import set_database_default, wait_for_lock_waiters

EXPECTED_INDEXES = {
    "ix_recordings_owner_created": ["recorded_by_user_id", "created_at", "id", "status"],
    "ix_recordings_appointment_id": ["appointment_id"],
    "ix_recordings_visit_id": ["visit_id"],
    "ix_recordings_stale_uploads": ["status", "upload_expires_at", "id"],
    "ix_recordings_purgeable": ["deleted_at", "id"],
    "ix_recordings_work_queue": ["lease_expires_at", "id"],
    "ix_recordings_created_at": ["created_at"],
    "uq_recordings_owner_idempotency_key": ["recorded_by_user_id", "idempotency_key"],
}


@pytest.fixture
def repository(empty_engine_url: str) -> Iterator[SqlAlchemyRepository]:
    """A repository on a database with no tables at all (SQLite file, fresh PostgreSQL)."""
    with SqlAlchemyRepository.from_url(empty_engine_url) as repository:
        yield repository


def _differences(engine: sa.Engine, target: sa.MetaData) -> list[Any]:
    """What Alembic autogenerate would change to make the database match ``target``."""
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection,
            opts={
                "compare_type": True,
                "compare_server_default": True,
                "include_name": lambda name, kind, _parents: (
                    kind != "table" or name in target.tables
                ),
            },
        )
        return list(compare_metadata(context, target))


def _tables(engine: sa.Engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names())


def _revision(engine: sa.Engine) -> str | None:
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"version_table": ALEMBIC_VERSION_TABLE}
        )
        return context.get_current_revision()


def test_upgrade_creates_the_table_and_indexes(repository: SqlAlchemyRepository) -> None:
    """Upgrading an empty database to head creates exactly the recordings table and its indexes."""
    engine = repository.engine
    assert _tables(engine) == set()
    repository.create_schema()
    assert _tables(engine) == {"recordings", AUDIT_TABLE_NAME, ALEMBIC_VERSION_TABLE}
    assert "alembic_version" not in _tables(engine)
    assert _revision(engine) == "0005"
    inspector = sa.inspect(engine)
    indexes = {
        index["name"]: index
        for index in inspector.get_indexes("recordings")
        if not index.get("duplicates_constraint")
    }
    assert {name: index["column_names"] for name, index in indexes.items()} == EXPECTED_INDEXES
    unique = {u["name"]: u["column_names"] for u in inspector.get_unique_constraints("recordings")}
    assert unique == {
        "uq_recordings_s3_key": ["s3_key"],
        "uq_recordings_upload_key": ["upload_key"],
    }
    assert indexes["uq_recordings_owner_idempotency_key"]["unique"]
    assert inspector.get_foreign_keys("recordings") == []
    columns = {column["name"]: column for column in inspector.get_columns("recordings")}
    assert len(columns) == 47
    assert not columns["recorded_by_user_id"]["nullable"]
    assert columns["created_at"]["nullable"]
    assert "uploading" in str(columns["status"]["default"])
    if engine.dialect.name == "postgresql":
        owner = indexes["ix_recordings_owner_created"]
        assert owner["column_sorting"] == {"created_at": ("desc",), "id": ("desc",)}
        assert owner["dialect_options"]["postgresql_where"] == "(NOT is_deleted)"
        sweep = indexes["ix_recordings_stale_uploads"]["dialect_options"]["postgresql_where"]
        assert "'uploading'" in sweep
        assert "NOT is_deleted" in sweep
        assert isinstance(columns["id"]["type"], sa.Uuid)
        assert isinstance(columns["created_at"]["type"], sa.DateTime)
        assert columns["created_at"]["type"].timezone
        stats_index = indexes["ix_recordings_created_at"]["dialect_options"]["postgresql_include"]
        assert stats_index == list(STATS_COLUMNS)
        key_type = columns["s3_key"]["type"]
        assert isinstance(key_type, sa.String)
        assert key_type.collation == "C"


def test_schema_matches_the_package_metadata(repository: SqlAlchemyRepository) -> None:
    """Autogenerate finds no difference between the migrated database and the metadata."""
    repository.create_schema()
    assert _differences(repository.engine, metadata) == []


def test_compare_is_not_vacuous(repository: SqlAlchemyRepository) -> None:
    """The comparison does notice a difference when the metadata has one."""
    repository.create_schema()
    changed = sa.MetaData()
    table = define_recordings_table(changed)
    table.append_column(sa.Column("extra", sa.Integer()))
    differences = _differences(repository.engine, changed)
    assert [diff[0] for diff in differences] == ["add_column"]


def test_downgrade_to_base_and_up_again(repository: SqlAlchemyRepository) -> None:
    """Downgrading removes the table; upgrading again restores a working schema."""
    engine = repository.engine
    repository.create_schema()
    repository.add(make_recording())
    with engine.begin() as connection:
        command.downgrade(alembic_config(connection), "base")
    assert _tables(engine) == {ALEMBIC_VERSION_TABLE}
    assert _revision(engine) is None
    repository.create_schema()
    assert _revision(engine) == "0005"
    assert _differences(engine, metadata) == []
    recording = make_recording()
    repository.add(recording)
    assert repository.get(recording.id) == recording


def test_create_schema_is_idempotent_and_safe_concurrently(
    repository: SqlAlchemyRepository,
) -> None:
    """Several threads creating the schema at once all succeed and leave one head revision.

    Exactly one of them reports that it changed the schema; the others found it at head.
    """
    errors: list[BaseException] = []
    upgrades: list[SchemaUpgrade] = []
    barrier = threading.Barrier(4)

    def create() -> None:
        barrier.wait()
        try:
            upgrades.append(repository.create_schema())
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=create) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert _revision(repository.engine) == "0005"
    assert sorted((u.before, u.after, u.changed) for u in upgrades) == [
        ((), ("0005",), True),
        *[(("0005",), ("0005",), False)] * 3,
    ]
    with repository.engine.connect() as connection:
        version_table = sa.table(ALEMBIC_VERSION_TABLE)
        versions = connection.execute(sa.select(sa.func.count()).select_from(version_table))
        assert versions.scalar_one() == 1


_MIGRATE_IN_A_PROCESS = {
    "create_schema": (
        "import sys\n"
        "from helppet_recordings.repositories.sqlalchemy import SqlAlchemyRepository\n"
        "with SqlAlchemyRepository.from_url(sys.argv[1]) as repository:\n"
        "    print('changed' if repository.create_schema().changed else 'unchanged')\n"
    ),
    "alembic_by_url": (
        "import sys\n"
        "from alembic import command\n"
        "from helppet_recordings.repositories.sqlalchemy import alembic_config\n"
        "command.upgrade(alembic_config(url=sys.argv[1]), 'head')\n"
        "print('upgraded')\n"
    ),
}
"""Scripts that migrate the database at ``argv[1]`` and print what they did."""


@pytest.mark.parametrize("isolation", ["repeatable read", "serializable"])
@pytest.mark.parametrize(
    ("how", "printed"), [("create_schema", "unchanged"), ("alembic_by_url", "upgraded")]
)
def test_a_migration_that_waited_finds_the_schema_the_other_made(
    new_postgres_database: Callable[[], str], isolation: str, how: str, printed: str
) -> None:
    """A migration that waited for the lock finds head, at any default isolation of the database.

    The test holds the lock, lets a process start migrating and wait for it,
    then migrates itself and commits: the process must then find the tables
    (under a snapshot taken before its wait, it would create them again).
    """
    url = new_postgres_database()
    set_database_default(url, "default_transaction_isolation", isolation)
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    waiting: subprocess.Popen[str] | None = None
    try:
        with MIGRATION_LOCK, engine.connect() as holder:
            lock_for_migration(holder)
            waiting = subprocess.Popen(
                [sys.executable, "-c", _MIGRATE_IN_A_PROCESS[how], url],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            wait_for_lock_waiters(engine, 1)
            first = upgrade_to_head(holder)
            holder.commit()
        stdout, stderr = waiting.communicate(timeout=120)
        assert waiting.returncode == 0, stderr
        assert stdout.split() == [printed]
        assert first.changed
        assert _revision(engine) == "0005"
    finally:
        if waiting is not None and waiting.poll() is None:
            waiting.kill()
            waiting.communicate()
        engine.dispose()


@pytest.mark.parametrize("isolation", ["repeatable read", "serializable"])
def test_a_host_engine_that_queries_at_begin_migrates_at_any_isolation(
    new_postgres_database: Callable[[], str], isolation: str
) -> None:
    """A "begin" listener's query (a tenant setting, say) runs before the migration's first.

    Choosing the level with ``SET TRANSACTION`` after that query is refused
    (``ActiveSqlTransaction``); the level goes with the ``BEGIN`` instead, and
    the host's connections keep their own level afterwards.
    """
    url = new_postgres_database()
    set_database_default(url, "default_transaction_isolation", isolation)
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    levels: list[str] = []

    @sa.event.listens_for(engine, "begin")
    def tenant(connection: sa.Connection) -> None:
        connection.exec_driver_sql("SELECT set_config('app.tenant', 'clinic-1', true)")
        levels.append(connection.exec_driver_sql("SHOW transaction_isolation").scalar_one())

    try:
        assert SqlAlchemyRepository(engine).create_schema().changed
        assert levels[0] == "read committed"
        with engine.begin():  # the host's own transaction, at its own level
            pass
        assert levels[-1] == isolation
        assert _revision(engine) == "0005"
    finally:
        engine.dispose()


def test_create_schema_refuses_tables_without_a_revision(
    repository: SqlAlchemyRepository,
) -> None:
    """Tables made by create_all, no revision: a permanent RepositoryError, nothing changed."""
    metadata.create_all(repository.engine)
    with pytest.raises(RepositoryError) as refused:
        repository.create_schema()
    assert type(refused.value) is RepositoryError  # not the retryable "unavailable"
    assert refused.value.details["tables"] == [AUDIT_TABLE_NAME, "recordings"]
    assert ALEMBIC_VERSION_TABLE not in _tables(repository.engine)
    assert _revision(repository.engine) is None


def test_migrations_ship_inside_the_package() -> None:
    """The script directory lives inside the installed package, with env.py and revision 0001."""
    assert MIGRATIONS_DIR.parent.name == "helppet_recordings"
    assert (MIGRATIONS_DIR / "env.py").is_file()
    assert (MIGRATIONS_DIR / "script.py.mako").is_file()
    assert (MIGRATIONS_DIR / "versions" / "0001_create_recordings.py").is_file()


def test_offline_sql_for_postgresql(capsys: pytest.CaptureFixture[str]) -> None:
    """Alembic can print the PostgreSQL DDL without connecting (for DBAs who review SQL)."""
    config = alembic_config(url="postgresql+psycopg://reviewer@db.invalid/clinic")
    command.upgrade(config, "head", sql=True)
    ddl = capsys.readouterr().out
    assert "CREATE TABLE recordings" in ddl
    assert "WHERE NOT is_deleted" in ddl
    assert "created_at DESC" in ddl
    assert ALEMBIC_VERSION_TABLE in ddl


def test_upgrade_from_0001_marks_verified_recordings(repository: SqlAlchemyRepository) -> None:
    """Rows verified before 0002 get verified_at from their last update; all are in cycle 1."""
    engine = repository.engine
    config = alembic_config(url=engine.url.render_as_string(hide_password=False))
    command.upgrade(config, "0001")
    stamp = dt.datetime(2026, 11, 1, 12, tzinfo=dt.UTC)
    rows = [
        ("uploaded", 10, stamp),
        ("failed", None, stamp),
        ("uploading", None, stamp),
    ]
    old = sa.table(
        "recordings",
        *(sa.column(name, sa.Uuid()) for name in ("id", "recorded_by_user_id")),
        *(sa.column(name, sa.String()) for name in ("status", "filename", "s3_bucket", "s3_key")),
        sa.column("file_size_bytes", sa.Integer()),
        sa.column("is_deleted", sa.Boolean()),
        *(sa.column(name, sa.DateTime(timezone=True)) for name in ("created_at", "updated_at")),
    )
    with engine.begin() as connection:
        for index, (status, size, updated) in enumerate(rows):
            connection.execute(
                old.insert().values(
                    id=uuid.UUID(int=index + 1),
                    recorded_by_user_id=uuid.UUID(int=99),
                    status=status,
                    filename="f",
                    file_size_bytes=size,
                    s3_bucket="b",
                    s3_key=f"k{index}",
                    is_deleted=False,
                    created_at=updated,
                    updated_at=updated,
                )
            )
    command.upgrade(config, "head")
    with engine.connect() as connection:
        found = connection.execute(
            sa.text(
                "SELECT status, verified_at, processing_attempts, processing_cycle "
                "FROM recordings ORDER BY id"
            )
        ).all()
    assert [(row[0], row[1] is not None, row[2], row[3]) for row in found] == [
        ("uploaded", True, 0, 1),
        ("failed", False, 0, 1),
        ("uploading", False, 0, 1),
    ]
    migrated = repository.get(uuid.UUID(int=2))
    assert migrated is not None
    assert migrated.processing_cycle == 1


def test_sqlite_indexes_are_the_metadata_s_to_the_letter(tmp_path: Path) -> None:
    """Every index SQLite holds after the migrations is the one create_all makes (DESC kept)."""

    def indexes(engine: sa.Engine) -> dict[str, str]:
        with engine.connect() as connection:
            rows = connection.execute(
                sa.text(
                    "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
                )
            ).all()
        return {str(name): str(sql) for name, sql in rows}

    migrated = sa.create_engine(f"sqlite:///{tmp_path / 'migrated.db'}")
    with migrated.begin() as connection:
        command.upgrade(alembic_config(connection), "head")
    created = sa.create_engine(f"sqlite:///{tmp_path / 'created.db'}")
    metadata.create_all(created)
    owner = indexes(migrated)["ix_recordings_owner_created"]
    assert "created_at DESC, id DESC" in owner
    assert indexes(migrated) == indexes(created)
