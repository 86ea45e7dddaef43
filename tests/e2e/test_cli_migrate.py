"""``migrate`` and doctor's database checks on PostgreSQL (a throwaway cluster)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from helppet_recordings.cli._app import cli
from helppet_recordings.cli._database import head_revisions
from tests.support.postgres import PostgresServer

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL cluster for this module; fails (never skips) if it cannot start."""
    server = PostgresServer()
    try:
        server.start(timeout=60)
    except RuntimeError as exc:
        server.stop()
        pytest.fail(f"PostgreSQL could not be started: {exc}", pytrace=False)
    try:
        yield server
    finally:
        server.stop()


def run_json(*args: str, exit_code: int) -> dict[str, Any]:
    """Invoke the command line with --json, check the exit status, and parse stdout."""
    result = CliRunner().invoke(cli, [*args, "--json"])
    assert result.exit_code == exit_code, result.output + result.stderr
    payload: dict[str, Any] = json.loads(result.stdout)
    return payload


def test_migrate_on_postgresql(
    postgres: PostgresServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """An empty database fails doctor, migrate brings it to head once, then doctor passes."""
    for name in list(os.environ):
        if name.startswith(("HELPPET_", "S3_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("DATABASE_URL", postgres.create_database("cli_migrate"))
    monkeypatch.setenv("HELPPET_LOCAL_STORAGE_SECRET", "local-storage-secret-for-tests")
    monkeypatch.setenv("HELPPET_LOCAL_STORAGE_DIR", str(tmp_path))

    before = {f["check"]: f for f in run_json("doctor", exit_code=1)["findings"]}
    assert before["database.reachable"]["status"] == "ok"
    assert before["database.migrations"]["status"] == "fail"
    assert before["database.migrations"]["fix"] == "run `helppet-recordings migrate`"

    first = run_json("migrate", exit_code=0)
    second = run_json("migrate", exit_code=0)
    assert (first["from"], first["to"], first["changed"]) == ([], head_revisions(), True)
    assert second["changed"] is False
    assert first["database"].startswith("postgresql+psycopg://postgres@127.0.0.1:")

    assert run_json("doctor", exit_code=0)["summary"] == {"ok": 6, "warn": 0, "fail": 0}
