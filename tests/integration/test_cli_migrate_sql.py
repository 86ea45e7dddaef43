"""``helppet-recordings migrate`` on SQLite and PostgreSQL: tables it did not make, races."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
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

SQLITE_HOLD_SECONDS = 3.0
"""How long the SQLite test holds the lock for both processes to reach it (it cannot see them)."""


@pytest.fixture
def database(empty_engine_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """A deployment's environment on an empty database (SQLite file, PostgreSQL); its URL."""
    for name in list(os.environ):
        if name.startswith(("HELPPET_", "S3_")) or name == "DATABASE_URL":
            monkeypatch.delenv(name)
    monkeypatch.setenv("DATABASE_URL", empty_engine_url)
    monkeypatch.setenv("HELPPET_LOCAL_STORAGE_SECRET", "local-storage-secret-for-tests")
    monkeypatch.setenv("HELPPET_LOCAL_STORAGE_DIR", str(tmp_path))
    return empty_engine_url


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


def _wait_for_waiters(engine: sa.Engine, count: int) -> None:
    """Return once ``count`` PostgreSQL sessions wait for an advisory lock (the migration's)."""
    waiting = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with engine.connect() as connection:
            if connection.execute(sa.text(waiting)).scalar_one() >= count:
                return
        time.sleep(0.05)
    pytest.fail(f"{count} migrations never waited for the lock")


def test_concurrent_migrations_report_one_change(database: str) -> None:
    """Two migrate processes at once: one upgrades, the other reports it changed nothing.

    The test holds the migration lock while both start, so both begin before
    either has migrated; each must report what its own run did.
    """
    with SqlAlchemyRepository.from_url(database) as repository:  # on SQLite: WAL, as they use
        engine = repository.engine
        with engine.connect() as holder:
            lock_for_migration(holder)
            processes = [_start_migrate(), _start_migrate()]
            if engine.dialect.name == "postgresql":
                _wait_for_waiters(engine, 2)
            else:
                time.sleep(SQLITE_HOLD_SECONDS)
            holder.rollback()
        finished = [process.communicate(timeout=120) for process in processes]
    for process, (_stdout, stderr) in zip(processes, finished, strict=True):
        assert process.returncode == 0, stderr
    reports = sorted((json.loads(stdout) for stdout, _stderr in finished), key=lambda r: r["from"])
    heads = head_revisions()
    assert [(r["from"], r["to"], r["changed"]) for r in reports] == [
        ([], heads, True),
        (heads, heads, False),
    ]
