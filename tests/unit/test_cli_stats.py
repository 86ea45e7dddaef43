"""``helppet-recordings stats`` on a local deployment: exit codes, JSON, text, progress."""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from helppet_recordings.cli import main
from helppet_recordings.environment import Backends, DeploymentSettings, build_backends
from tests.unit.test_cli_commands import AUDIO, SECRET, living_at, run, run_json


@pytest.fixture
def deployment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A local deployment's environment (SQLite + LocalStorage), not yet migrated."""
    for name in list(os.environ):
        if name.startswith(("HELPPET_", "S3_")) or name == "DATABASE_URL":
            monkeypatch.delenv(name)
    data = tmp_path / "data"
    data.mkdir()
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'recordings.db'}")
    monkeypatch.setenv("HELPPET_LOCAL_STORAGE_DIR", str(data))
    monkeypatch.setenv("HELPPET_LOCAL_STORAGE_SECRET", SECRET)
    return data


@pytest.fixture
def backends(deployment: Path) -> Iterator[Backends]:
    """The deployment's backends, its database migrated by the command line."""
    run_json("migrate")
    built = build_backends(DeploymentSettings.load())
    yield built
    built.close()


def _two_recordings(backends: Backends) -> dt.datetime:
    """One upload started three days ago and one now; return a moment between them."""
    now = dt.datetime.now(dt.UTC)
    user = uuid.uuid4()
    living_at(backends, now - dt.timedelta(days=3)).initiate_upload(user, AUDIO)
    backends.service.initiate_upload(user, AUDIO)
    return now - dt.timedelta(days=1)


def test_stats_json_counts_the_window(backends: Backends) -> None:
    """--json prints the statistics; --since narrows them; naive times are UTC."""
    between = _two_recordings(backends)
    everything = run_json("stats")
    assert everything["ok"] is True
    assert everything["total"] == 2
    assert everything["by_status"]["uploading"] == 2
    assert everything["upload_success_rate"] is None
    assert everything["file_size_bytes"]["count"] == 0
    recent = run_json("stats", "--since", between.isoformat())
    assert recent["total"] == 1
    assert recent["since"].startswith(between.isoformat()[:19])
    naive = between.replace(tzinfo=None).isoformat()
    assert run_json("stats", "--until", naive)["total"] == 1


def test_stats_text_and_progress(backends: Backends) -> None:
    """The text report names the figures; no progress unless stdout is a terminal."""
    _two_recordings(backends)
    quiet = run("stats")
    assert quiet.exit_code == 0
    assert quiet.stderr == ""
    assert "Recordings created from the beginning until now: 2" in quiet.stdout
    assert "uploading 2" in quiet.stdout
    assert "n/a (no upload has settled)" in quiet.stdout
    assert "processing (s)" in quiet.stdout
    forced = run("stats", "--progress")
    assert forced.exit_code == 0
    assert "Computing statistics" in forced.stderr
    assert "Computing statistics" not in forced.stdout


def test_stats_usage_errors_exit_2(backends: Backends) -> None:
    """A malformed time or an empty window is a usage error (exit 2), not a traceback."""
    bad = run("stats", "--since", "last tuesday")
    assert bad.exit_code == 2
    assert "ISO 8601" in bad.stderr
    reversed_window = run("stats", "--since", "2026-11-02", "--until", "2026-11-01")
    assert reversed_window.exit_code == 2
    assert "--until must be later than --since" in reversed_window.stderr
    assert "Traceback" not in bad.output + reversed_window.output
    beyond = run("stats", "--since", "0001-01-01T00:00:00+01:00")
    assert beyond.exit_code == 2
    assert "outside the range of dates" in beyond.stderr


def test_stats_on_an_unmigrated_database_exits_1(deployment: Path) -> None:
    """Without the schema the command fails cleanly with the database error (exit 1)."""
    error = run_json("stats", exit_code=1)["error"]
    assert error["error_code"] == "DATABASE_ERROR"


def test_stats_reads_only_the_database(
    backends: Backends, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a storage secret stats still runs, and it never creates the storage directory."""
    _two_recordings(backends)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HELPPET_LOCAL_STORAGE_DIR")
    monkeypatch.delenv("HELPPET_LOCAL_STORAGE_SECRET")
    assert run_json("stats")["total"] == 2
    monkeypatch.setenv("HELPPET_LOCAL_STORAGE_SECRET", SECRET)
    assert run_json("stats")["total"] == 2
    assert not (tmp_path / "helppet-recordings-data").exists()


def test_the_entry_point_lists_stats(capsys: pytest.CaptureFixture[str]) -> None:
    """``helppet-recordings --help`` lists the stats command."""
    with pytest.raises(SystemExit) as caught:
        main(["--help"])
    assert caught.value.code == 0
    assert "stats" in capsys.readouterr().out
