"""``helppet-recordings migrate`` on SQLite and PostgreSQL: tables it did not make, races."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from click.testing import CliRunner, Result

from helppet_recordings.cli._app import cli
from helppet_recordings.cli._database import head_revisions
from helppet_recordings.repositories.sqlalchemy import (
    ALEMBIC_VERSION_TABLE,
    SqlAlchemyRepository,
    alembic_config,
    metadata,
)
from helppet_recordings.repositories.sqlalchemy.migrate import lock_for_migration
from tests.support.migrations import set_database_default, wait_for_lock_waiters

SQLITE_HOLD_SECONDS = 3.0
"""How long the SQLite test holds the lock for both processes to reach it (it cannot see them)."""


def _deploy_on(url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """Set a deployment's environment (local storage) on the database at ``url``; return it."""
    for name in list(os.environ):
        if name.startswith(("HELPPET_", "S3_")) or name == "DATABASE_URL":
            monkeypatch.delenv(name)
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("HELPPET_LOCAL_STORAGE_SECRET", "local-storage-secret-for-tests")
    monkeypatch.setenv("HELPPET_LOCAL_STORAGE_DIR", str(tmp_path))
    return url


@pytest.fixture
def database(empty_engine_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """A deployment's environment on an empty database (SQLite file, PostgreSQL); its URL."""
    return _deploy_on(empty_engine_url, monkeypatch, tmp_path)


@pytest.fixture
def postgres_database(
    new_postgres_database: Callable[[], str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> str:
    """A deployment's environment on a new, empty PostgreSQL database; its URL."""
    return _deploy_on(new_postgres_database(), monkeypatch, tmp_path)


def run(*args: str) -> Result:
    """Invoke the command line in-process."""
    return CliRunner().invoke(cli, list(args))


def run_json(*args: str, exit_code: int) -> dict[str, Any]:
    """Invoke with --json, check the exit status, and parse stdout."""
    result = run(*args, "--json")
    assert result.exit_code == exit_code, result.output + result.stderr
    payload: dict[str, Any] = json.loads(result.stdout)
    return payload


def _tables(url: str) -> set[str]:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def _make_tables(url: str, *, by_hand: bool) -> None:
    """Make the recordings tables without the migrations: create_all, or one table by hand."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        if by_hand:
            with engine.begin() as connection:
                connection.execute(sa.text("CREATE TABLE recordings (id INTEGER PRIMARY KEY)"))
        else:
            metadata.create_all(engine)
    finally:
        engine.dispose()


@pytest.mark.parametrize("by_hand", [False, True], ids=["create_all", "by_hand"])
def test_migrate_refuses_tables_without_a_migration_history(
    database: str, *, by_hand: bool
) -> None:
    """Tables but no revision: a permanent DATABASE_ERROR that says how to adopt them."""
    _make_tables(database, by_hand=by_hand)
    tables = _tables(database)
    error = run_json("migrate", exit_code=1)["error"]
    assert error["error_code"] == "DATABASE_ERROR"
    expected = ["recordings"] if by_hand else ["recording_audit", "recordings"]
    assert error["details"]["tables"] == expected
    assert "retry_after" not in error["details"]
    assert "but no migration history" in error["message"]
    assert f'command.stamp(alembic_config(url=...), "{head_revisions()[0]}")' in error["message"]
    assert _tables(database) == tables  # nothing made, not even the version table

    text = run("migrate")
    assert text.exit_code == 1
    assert "but no migration history" in text.stderr
    assert "temporarily unavailable" not in text.stderr
    assert "Traceback" not in text.output + text.stderr

    found = {f["check"]: f for f in run_json("doctor", exit_code=0)["findings"]}  # a warning
    assert found["database.migrations"]["status"] == "warn"
    assert "stamp the revision" in found["database.migrations"]["fix"]


def test_stamped_tables_are_adopted(database: str) -> None:
    """Tables made by create_all, stamped at head as the message says: migrate is then a no-op."""
    _make_tables(database, by_hand=False)
    run_json("migrate", exit_code=1)
    command.stamp(alembic_config(url=database), head_revisions()[0])
    report = run_json("migrate", exit_code=0)
    assert (report["from"], report["to"], report["changed"]) == (
        head_revisions(),
        head_revisions(),
        False,
    )
    assert ALEMBIC_VERSION_TABLE in _tables(database)
    found = {f["check"]: f for f in run_json("doctor", exit_code=0)["findings"]}
    assert found["database.migrations"]["status"] == "ok"


def _start_migrate() -> subprocess.Popen[str]:
    """Start ``helppet-recordings migrate --json`` as a process of its own."""
    return subprocess.Popen(
        [sys.executable, "-m", "helppet_recordings.cli", "migrate", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _race_two_migrations(url: str) -> list[dict[str, Any]]:
    """Run two migrate processes that both start before either migrates; their reports.

    The test holds the migration lock while both start (on PostgreSQL until
    both wait for it), so the two runs overlap whatever the scheduler does.
    """
    with SqlAlchemyRepository.from_url(url) as repository:  # on SQLite: WAL, as they use
        engine = repository.engine
        with engine.connect() as holder:
            lock_for_migration(holder)
            processes = [_start_migrate(), _start_migrate()]
            if engine.dialect.name == "postgresql":
                wait_for_lock_waiters(engine, 2)
            else:
                time.sleep(SQLITE_HOLD_SECONDS)
            holder.rollback()
        finished = [process.communicate(timeout=120) for process in processes]
    for process, (stdout, stderr) in zip(processes, finished, strict=True):
        assert process.returncode == 0, stdout + stderr
    return sorted((json.loads(stdout) for stdout, _stderr in finished), key=lambda r: r["from"])


def test_concurrent_migrations_report_one_change(database: str) -> None:
    """Two migrate processes at once: one upgrades, the other reports it changed nothing."""
    reports = _race_two_migrations(database)
    heads = head_revisions()
    assert [(r["from"], r["to"], r["changed"]) for r in reports] == [
        ([], heads, True),
        (heads, heads, False),
    ]


@pytest.mark.parametrize("isolation", ["repeatable read", "serializable"])
def test_concurrent_migrations_under_a_stricter_default_isolation(
    postgres_database: str, isolation: str
) -> None:
    """Two migrate processes at once where transactions default to a snapshot isolation.

    A run whose transaction took its snapshot before it waited for the lock
    would not see the tables the other run made, and make them again
    (``DuplicateTable``). Both must succeed and only one report a change.
    """
    set_database_default(postgres_database, "default_transaction_isolation", isolation)
    reports = _race_two_migrations(postgres_database)
    heads = head_revisions()
    assert [(r["from"], r["to"], r["changed"]) for r in reports] == [
        ([], heads, True),
        (heads, heads, False),
    ]
    found = {f["check"]: f for f in run_json("doctor", exit_code=0)["findings"]}
    assert found["database.migrations"]["status"] == "ok"


@pytest.mark.parametrize(
    ("setting", "reason"),
    [("lock_timeout", "LockNotAvailable (55P03)"), ("statement_timeout", "QueryCanceled (57014)")],
)
def test_a_migration_that_gives_up_waiting_says_another_one_runs(
    postgres_database: str, setting: str, reason: str
) -> None:
    """A run stopped waiting by a timeout names the migration it waited for, and so does doctor.

    Not "the database is temporarily unavailable" while it answers, and
    not doctor's "run migrate" while a migration is running.
    """
    set_database_default(postgres_database, "default_transaction_isolation", "repeatable read")
    set_database_default(postgres_database, setting, "200ms")
    engine = sa.create_engine(postgres_database, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as holder:
            lock_for_migration(holder)
            error = run_json("migrate", exit_code=1)["error"]
            text = run("migrate")
            found = {f["check"]: f for f in run_json("doctor", exit_code=1)["findings"]}
            holder.rollback()
    finally:
        engine.dispose()
    assert error["error_code"] == "DATABASE_UNAVAILABLE"
    assert error["message"].startswith("Another migration of this database is running")
    assert error["details"] == {"retry_after": 1, "operation": "create_schema", "reason": reason}
    assert text.exit_code == 1
    assert "Another migration of this database is running" in text.stderr
    assert "temporarily unavailable" not in text.stderr
    migrations = found["database.migrations"]
    assert found["database.reachable"]["status"] == "ok"
    assert migrations["status"] == "fail"
    assert migrations["message"] == (
        "the database has no recordings schema; a migration is running now "
        "(a session holds the migration lock)"
    )
    assert "wait for it to finish" in migrations["fix"]
    assert run_json("migrate", exit_code=0)["changed"] is True
    found = {f["check"]: f for f in run_json("doctor", exit_code=0)["findings"]}
    assert found["database.migrations"]["status"] == "ok"
