"""The commands on a local deployment (SQLite + LocalStorage): exit codes, JSON, progress."""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result
from rich.console import Console

from helppet_recordings import LocalStorage, RecordingService
from helppet_recordings.cli import main
from helppet_recordings.cli._app import cli
from helppet_recordings.cli._database import head_revisions
from helppet_recordings.cli._running import existing_database
from helppet_recordings.cli._text_reports import apply_text
from helppet_recordings.cli.bucket import PartResult
from helppet_recordings.environment import Backends, DeploymentSettings, build_backends
from helppet_recordings.schemas import InitiateUploadResponse
from helppet_recordings.transcription import speech_sample
from tests.support.servers import free_ports

SECRET = "local-storage-secret-for-tests"
AUDIO = {"filename": "a.m4a", "content_type": "audio/m4a"}


@pytest.fixture
def deployment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A local deployment's environment; returns the storage directory (created)."""
    for name in list(os.environ):
        if name.startswith(("HELPPET_", "S3_")) or name == "DATABASE_URL":
            monkeypatch.delenv(name)
    data = tmp_path / "data"
    data.mkdir()
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'recordings.db'}")
    monkeypatch.setenv("HELPPET_LOCAL_STORAGE_DIR", str(data))
    monkeypatch.setenv("HELPPET_LOCAL_STORAGE_SECRET", SECRET)
    return data


def run(*args: str) -> Result:
    """Invoke the command line in-process (stdout is not a terminal)."""
    return CliRunner().invoke(cli, list(args))


def run_json(*args: str, exit_code: int = 0) -> dict[str, Any]:
    """Invoke with --json, check the exit status, and parse stdout."""
    result = run(*args, "--json")
    assert result.exit_code == exit_code, result.output + result.stderr
    payload: dict[str, Any] = json.loads(result.stdout)
    return payload


@pytest.fixture
def backends(deployment: Path) -> Iterator[Backends]:
    """The deployment's backends, its database migrated by the command line."""
    run_json("migrate")
    built = build_backends(DeploymentSettings.load())
    yield built
    built.close()


def living_at(backends: Backends, moment: dt.datetime) -> RecordingService:
    """The deployment's service with its clock stopped at ``moment``."""
    return RecordingService(
        backends.storage, backends.repository, backends.service.settings, clock=lambda: moment
    )


def upload(storage: LocalStorage, fields: dict[str, str], body: bytes) -> None:
    """Store ``body`` as the upload route would."""
    policy = storage.verify_upload({name.lower(): value for name, value in fields.items()})
    with storage.stage(policy) as staged:
        staged.write(body)
        staged.commit()


def test_migrate_creates_the_schema_once(deployment: Path) -> None:
    """The first migrate goes from no schema to head; the second changes nothing."""
    first = run_json("migrate")
    second = run_json("migrate")
    assert (first["from"], first["to"], first["changed"]) == ([], head_revisions(), True)
    assert (second["from"], second["changed"]) == (head_revisions(), False)
    assert "already at the head revision" in run("migrate").stdout


DATABASE_COMMANDS = [("stats",), ("sweep",), ("worker", "--once"), ("reconcile",), ("purge",)]
"""Every command that works on the deployment's database (migrate and doctor aside)."""


@pytest.mark.parametrize("command", DATABASE_COMMANDS, ids=lambda args: args[0])
def test_a_command_without_a_database_creates_nothing(
    deployment: Path, monkeypatch: pytest.MonkeyPatch, command: tuple[str, ...]
) -> None:
    """Before migrate: DATABASE_ERROR saying to migrate; no SQLite file, no storage directory."""
    database = deployment.parent / "recordings.db"
    storage = deployment.parent / "not-yet"
    monkeypatch.setenv("HELPPET_LOCAL_STORAGE_DIR", str(storage))
    error = run_json(*command, exit_code=1)["error"]
    assert error["error_code"] == "DATABASE_ERROR"
    assert "helppet-recordings migrate" in error["message"]
    assert error["details"] == {"database_file": str(database)}
    text = run(*command)
    assert (text.exit_code, text.stdout) == (1, "")
    assert "does not exist: run `helppet-recordings migrate` first" in text.stderr
    assert not database.exists()
    assert not storage.exists()
    found = {f["check"]: f for f in run_json("doctor", exit_code=1)["findings"]}
    assert found["database.reachable"]["status"] == "fail"
    assert "does not exist" in found["database.reachable"]["message"]


@pytest.mark.parametrize("command", DATABASE_COMMANDS[1:], ids=lambda args: args[0])
def test_a_storage_command_without_its_directory_creates_none(
    deployment: Path, monkeypatch: pytest.MonkeyPatch, command: tuple[str, ...]
) -> None:
    """A missing LocalStorage directory is a configuration error; it is not made empty."""
    run_json("migrate")
    storage = deployment.parent / "not-yet"
    monkeypatch.setenv("HELPPET_LOCAL_STORAGE_DIR", str(storage))
    error = run_json(*command, exit_code=2)["error"]
    assert error["error_code"] == "CONFIGURATION_ERROR"
    assert error["details"]["variable"] == "HELPPET_LOCAL_STORAGE_DIR"
    assert f"({storage}) does not exist" in error["message"]
    assert not storage.exists()
    assert run_json("stats")["total"] == 0  # storage is neither configured nor touched


def test_commands_open_a_sqlite_file_they_find_under_any_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, deployment: Path
) -> None:
    """A path holding URI syntax (space, ?, #, %) is opened as the file it names."""
    database = tmp_path / "clinic db?#%.sqlite"
    url = sa.URL.create("sqlite", database=str(database)).render_as_string()
    monkeypatch.setenv("DATABASE_URL", url)  # sqlite:///.../clinic db%3F%23%25.sqlite
    run_json("migrate")
    assert run_json("sweep") == {"ok": True, "failed": 0, "aborted_uploads": 0}
    assert run_json("stats")["total"] == 0
    assert sorted(p.name for p in tmp_path.iterdir() if "clinic" in p.name) == [database.name]


@pytest.mark.parametrize("uri", ["true", "1"])
def test_a_plain_path_with_uri_true_is_still_a_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, deployment: Path, uri: str
) -> None:
    """With ``uri=true`` SQLite still reads a name without ``file:`` as a path: no stray file."""
    database = tmp_path / "plain.db"
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{database}?uri={uri}")
    error = run_json("stats", exit_code=1)["error"]
    assert error["details"] == {"database_file": str(database)}  # told to migrate first
    run_json("migrate")
    assert run_json("stats")["total"] == 0
    assert sorted(p.name for p in tmp_path.iterdir() if "plain" in p.name) == ["plain.db"]


def test_a_database_deleted_after_the_check_is_not_created_again(
    deployment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The commands open SQLite with mode=rw: a file gone by the time they connect stays gone."""
    run_json("migrate")
    database = deployment.parent / "recordings.db"
    environment = existing_database(DeploymentSettings.load())
    assert "mode=rw" in environment.database_url
    database.unlink()
    engine = sa.create_engine(environment.database_url)
    with pytest.raises(sa.exc.OperationalError), engine.connect():
        pass
    engine.dispose()
    assert not database.exists()


def test_doctor_passes_a_healthy_local_deployment(deployment: Path) -> None:
    """Migrated database, writable directory, a secret: every finding ok, exit 0."""
    run_json("migrate")
    report = run_json("doctor")
    assert report["ok"] is True
    assert {f["check"]: f["status"] for f in report["findings"]} == {
        "database.reachable": "ok",
        "database.migrations": "ok",
        "local.directory": "ok",
        "local.writable": "ok",
        "local.secret": "ok",
        "local.public_url": "ok",
    }


def test_doctor_says_what_to_fix(deployment: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No database file, no directory, no secret, public plain HTTP: exit 1, a fix for each."""
    monkeypatch.setenv("HELPPET_LOCAL_STORAGE_DIR", str(deployment / "missing"))
    monkeypatch.delenv("HELPPET_LOCAL_STORAGE_SECRET")
    monkeypatch.setenv("HELPPET_PUBLIC_BASE_URL", "http://api.example.com")
    report = run_json("doctor", exit_code=1)
    found = {f["check"]: f for f in report["findings"]}
    assert found["database.reachable"]["status"] == "fail"
    assert "helppet-recordings migrate" in found["database.reachable"]["fix"]
    assert found["local.directory"]["status"] == "fail"
    assert found["local.secret"]["status"] == "fail"
    assert "HELPPET_LOCAL_STORAGE_SECRET" in found["local.secret"]["fix"]
    assert found["local.public_url"]["status"] == "warn"
    assert report["summary"] == {"ok": 0, "warn": 3, "fail": 3}
    assert not (deployment.parent / "recordings.db").exists()  # doctor created nothing
    text = run("doctor")
    assert text.exit_code == 1
    assert "fix: run `helppet-recordings migrate`" in text.stdout


def _stamp_unknown_revision() -> None:
    """Migrate, then stamp the database with revision f00d, as a newer package would leave it."""
    run_json("migrate")
    engine = sa.create_engine(os.environ["DATABASE_URL"])
    with engine.begin() as connection:
        connection.execute(
            sa.text("UPDATE helppet_recordings_alembic_version SET version_num = 'f00d'")
        )
    engine.dispose()


def test_doctor_flags_a_database_from_another_version(deployment: Path) -> None:
    """A revision this package does not know fails with a hint; --strict also fails on warns."""
    _stamp_unknown_revision()
    found = {f["check"]: f for f in run_json("doctor", exit_code=1)["findings"]}
    assert found["database.migrations"]["status"] == "fail"
    assert "does not know" in found["database.migrations"]["message"]


def test_migrate_refuses_a_database_from_another_version(deployment: Path) -> None:
    """A revision this package does not know: migrate exits 1 with DATABASE_ERROR, no traceback."""
    _stamp_unknown_revision()
    error = run_json("migrate", exit_code=1)["error"]
    assert error["error_code"] == "DATABASE_ERROR"
    assert "revision f00d, which this version of the package does not know" in error["message"]
    assert error["details"]["revisions"] == ["f00d"]
    text = run("migrate")
    assert text.exit_code == 1
    assert "Traceback" not in text.output + text.stderr
    assert "does not know" in text.stderr


def test_migrate_masks_a_password_in_the_urls_query(
    deployment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A password in DATABASE_URL's query (libpq takes one there) is shown as ***, text and JSON."""
    path = deployment.parent / "recordings.db"
    monkeypatch.setenv(
        "DATABASE_URL", f"sqlite:///file:{path}?uri=true&password=Hunter2&sslpassword=Other3"
    )
    report = run_json("migrate")
    assert report["database"].endswith("?password=***&sslpassword=***&uri=true")
    text = run("migrate")
    assert text.exit_code == 0
    for secret in ("Hunter2", "Other3"):
        assert secret not in json.dumps(report) + text.output


def test_doctor_masks_a_password_in_the_urls_query(
    deployment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Doctor names the unreachable database without the password in its user part or query."""
    (port,) = free_ports(1)
    monkeypatch.setenv(
        "DATABASE_URL",
        f"postgresql+psycopg://app:Hunter2@127.0.0.1:{port}/db?password=Hunter2&sslmode=prefer",
    )
    report = run_json("doctor", exit_code=1)
    reachable = next(f for f in report["findings"] if f["check"] == "database.reachable")
    shown = f"app:***@127.0.0.1:{port}/db?password=***&sslmode=prefer"
    assert shown in reachable["message"]
    text = run("doctor")
    assert "Hunter2" not in json.dumps(report) + text.output


def test_sweep_fails_uploads_past_their_deadline(backends: Backends) -> None:
    """An upload started three hours ago and never sent is marked failed by sweep."""
    past = dt.datetime.now(dt.UTC) - dt.timedelta(hours=3)
    user = uuid.uuid4()
    living_at(backends, past).initiate_upload(user, AUDIO)
    assert run_json("sweep") == {"ok": True, "failed": 1, "aborted_uploads": 0}
    assert run_json("sweep") == {"ok": True, "failed": 0, "aborted_uploads": 0}
    assert backends.service.list_recordings(user, status="failed").total == 1


def test_sweep_aborts_multipart_uploads_nobody_waits_for(backends: Backends) -> None:
    """A stale multipart recording is failed (its upload aborted); an orphan upload is aborted."""
    storage = backends.local_storage
    assert storage is not None
    past = dt.datetime.now(dt.UTC) - dt.timedelta(hours=3)
    user = uuid.uuid4()
    living_at(backends, past).initiate_multipart_upload(
        user, {"filename": "v.wav", "content_type": "audio/wav", "file_size_bytes": 1000}
    )
    orphan = storage.create_multipart_upload(key="recordings/orphan.wav", content_type="audio/wav")
    described = storage.root / ".multipart" / orphan / "upload.json"
    document = json.loads(described.read_text(encoding="utf-8"))
    document["initiated"] = past.isoformat()
    described.write_text(json.dumps(document), encoding="utf-8")
    assert len(storage.list_multipart_uploads(prefix="")) == 2

    assert run_json("sweep") == {"ok": True, "failed": 1, "aborted_uploads": 1}
    assert storage.list_multipart_uploads(prefix="") == []
    assert "0 abandoned multipart upload(s) aborted" in run("sweep").stdout


def test_purge_removes_deleted_recordings(backends: Backends) -> None:
    """A deleted recording is purged once its retention (here 0 days) has passed."""
    user = uuid.uuid4()
    ticket = backends.service.initiate_upload(user, AUDIO)
    backends.service.delete_recording(user, ticket.recording_id)
    assert run_json("purge") == {"ok": True, "purged": 0}  # within the 30-day default
    assert run_json("purge", "--retention-days", "0") == {"ok": True, "purged": 1}


M4A = b"\x00\x00\x00\x18ftypM4A " + b"\x00" * 52


def _completed(backends: Backends) -> tuple[LocalStorage, InitiateUploadResponse]:
    """Upload and complete a 64-byte M4A (:data:`M4A`) through LocalStorage; return its ticket."""
    storage = backends.local_storage
    assert storage is not None
    user = uuid.uuid4()
    ticket = backends.service.initiate_upload(user, AUDIO)
    upload(storage, dict(ticket.upload_fields), M4A)
    backends.service.complete_upload(user, ticket.recording_id, {"file_size_bytes": len(M4A)})
    return storage, ticket


def test_reconcile_reports_orphans_and_lost_audio(backends: Backends) -> None:
    """An orphan and a recording whose file vanished: exit 1, both in the report."""
    storage, ticket = _completed(backends)
    storage.delete(ticket.s3_key)
    stray = "recordings/stray.m4a"
    upload(storage, _fields_for(storage, stray), b"\x00" * 16)

    report = run_json("reconcile", exit_code=1)
    assert report["dry_run"] is True
    assert stray in report["orphan_keys"]
    assert report["missing_objects"] == [str(ticket.recording_id)]
    assert report["deleted_orphans"] == 0

    _age(storage.root, stray, hours=2)
    deleted = run_json("reconcile", "--delete-orphans", exit_code=1)  # lost audio remains
    assert deleted["deleted_orphans"] == 1
    assert storage.head(stray) is None


def test_reconcile_deletes_orphans_older_than_the_given_age(backends: Backends) -> None:
    """--orphan-min-age sets how old an orphan must be to be deleted; the hint says it."""
    storage = backends.local_storage
    assert storage is not None
    stray = "recordings/stray.m4a"
    upload(storage, _fields_for(storage, stray), b"\x00" * 16)
    _age(storage.root, stray, hours=2)
    kept = run_json("reconcile", "--delete-orphans", "--orphan-min-age", "10800", exit_code=1)
    assert (kept["orphan_keys"], kept["deleted_orphans"]) == ([stray], 0)
    assert "older than 10800 second(s)" in run("reconcile", "--orphan-min-age", "10800").stdout
    deleted = run_json("reconcile", "--delete-orphans", "--orphan-min-age", "0")
    assert deleted["deleted_orphans"] == 1
    assert storage.head(stray) is None


def test_reconcile_prints_keys_as_they_are(backends: Backends) -> None:
    """Keys holding what rich would read as markup are printed literally, without a traceback."""
    storage = backends.local_storage
    assert storage is not None
    strays = ["recordings/x[/]y.m4a", "recordings/old[bold]copy.m4a"]
    for stray in strays:
        upload(storage, _fields_for(storage, stray), b"\x00" * 16)
    result = run("reconcile")
    assert result.exit_code == 1, result.output
    for stray in strays:
        assert stray in result.stdout


@pytest.mark.parametrize("name", ["audio[/old]", "audio[bold]x"])
def test_doctor_prints_paths_as_they_are(
    deployment: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """A directory that rich would read as markup is printed literally, without a MarkupError."""
    directory = deployment.parent / name
    directory.mkdir(parents=True)
    monkeypatch.setenv("HELPPET_LOCAL_STORAGE_DIR", str(directory))
    run_json("migrate")
    checked = run("doctor")
    assert checked.exit_code == 0, checked.output
    assert f"{directory} exists" in checked.stdout


def test_bucket_setup_prints_messages_as_they_are() -> None:
    """apply_text prints a message or fix holding markup-like brackets literally."""
    message = "refused for http://[bold]x/ (AccessDenied)"
    results = [PartResult(part="cors", action="failed", message=message, fix="grant [/it]")]
    printed = io.StringIO()
    apply_text(results, Console(file=printed, width=200, highlight=False))
    assert message in printed.getvalue()
    assert "fix: grant [/it]" in printed.getvalue()


def test_purge_refuses_a_retention_beyond_a_hundred_years(backends: Backends) -> None:
    """--retention-days above 36,500 is a usage error (exit 2), not an OverflowError traceback."""
    result = run("purge", "--retention-days", "99999999")
    assert result.exit_code == 2
    assert "Traceback" not in result.output + result.stderr
    assert "36500" in result.stderr


def test_reconcile_reports_audio_replaced_after_verification(backends: Backends) -> None:
    """Verified audio overwritten with other bytes of the same size: exit 1, the id listed."""
    storage, ticket = _completed(backends)
    assert run_json("reconcile")["changed_objects"] == []
    upload(storage, _fields_for(storage, ticket.s3_key), M4A[:-1] + b"\x01")

    report = run_json("reconcile", exit_code=1)
    assert report["changed_objects"] == [str(ticket.recording_id)]
    assert (report["missing_objects"], report["orphan_keys"]) == ([], [])
    text = run("reconcile")
    assert "1 recording(s) whose audio was replaced" in text.stdout
    assert str(ticket.recording_id) in text.stdout


def test_reconcile_reports_and_removes_a_replayed_tickets_bytes(backends: Backends) -> None:
    """A ticket replayed after completion leaves a staging object: exit 1 until it is removed."""
    storage, ticket = _completed(backends)
    upload(storage, dict(ticket.upload_fields), M4A)  # the replay

    report = run_json("reconcile", exit_code=1)
    assert report["leftover_staging_keys"] == [ticket.upload_fields["key"]]
    assert (report["deleted_staging"], report["unfinished_uploads"]) == (0, [])
    text = run("reconcile")
    assert "1 leftover staging object(s)" in text.stdout
    assert ticket.upload_fields["key"] in text.stdout
    cleaned = run_json("reconcile", "--delete-orphans")
    assert cleaned["deleted_staging"] == 1
    assert run_json("reconcile")["leftover_staging_keys"] == []


def _fields_for(storage: LocalStorage, key: str) -> dict[str, str]:
    ticket = storage.create_upload(key=key, content_type="audio/mp4", max_size=100, expires_in=60)
    return dict(ticket.fields)


def _age(root: Path, key: str, *, hours: int) -> None:
    """Make a stored object look ``hours`` old (its sidecar records when it was stored)."""
    meta = root / "sidecars" / key
    document = json.loads(meta.read_text(encoding="utf-8"))
    stored = dt.datetime.fromisoformat(document["stored_at"]) - dt.timedelta(hours=hours)
    document["stored_at"] = stored.isoformat()
    meta.write_text(json.dumps(document), encoding="utf-8")


def test_progress_is_off_unless_stdout_is_a_terminal(backends: Backends) -> None:
    """Under CliRunner stdout is no terminal: no progress; --progress forces it onto stderr."""
    quiet = run("reconcile")
    forced = run("reconcile", "--progress")
    assert quiet.exit_code == forced.exit_code == 0
    assert quiet.stderr == ""
    assert "Reconciling storage and database" in forced.stderr
    assert "Reconciling" not in forced.stdout


def test_bad_configuration_exits_2_with_the_variable(
    deployment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A wrong HELPPET_STORAGE is a usage error: exit 2, the variable in text and JSON."""
    monkeypatch.setenv("HELPPET_STORAGE", "ftp")
    text = run("sweep")
    assert text.exit_code == 2
    assert "HELPPET_STORAGE" in text.stderr
    error = run_json("sweep", exit_code=2)["error"]
    assert error["error_code"] == "CONFIGURATION_ERROR"
    assert run("sweep", "--no-such-option").exit_code == 2
    assert run("bucket-setup").exit_code == 2  # needs HELPPET_STORAGE=s3


@pytest.mark.parametrize(
    ("args", "message", "parameter"),
    [
        (
            ("stats", "--since", "2026-11-02", "--until", "2026-11-01"),
            "--until must be later than --since",
            None,
        ),
        (("purge", "--retention-days", "-1"), "-1 is not in the range", "--retention-days"),
        (("reconcile", "--orphan-min-age", "-1"), "-1 is not in the range", "--orphan-min-age"),
        (("reconcile", "--orphan-min-age", "1e3"), "1e3", "--orphan-min-age"),
        (("sweep", "--no-such-option"), "--no-such-option", None),
        (("no-such-command",), "No such command", None),
    ],
)
def test_usage_errors_are_json_with_json(
    deployment: Path, args: tuple[str, ...], message: str, parameter: str | None
) -> None:
    """With --json a usage error is one JSON document on stdout (USAGE_ERROR), still exit 2."""
    error = run_json(*args, exit_code=2)["error"]
    assert error["error_code"] == "USAGE_ERROR"
    assert message in error["message"]
    assert error["details"].get("parameter") == parameter
    text = run(*args)
    assert text.exit_code == 2
    assert text.stdout == ""
    assert message in text.stderr


def test_an_upload_without_a_token_is_a_json_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The usage error upload raises itself is JSON on stdout with --json, exit 2."""
    monkeypatch.delenv("HELPPET_API_TOKEN", raising=False)
    audio = tmp_path / "a.m4a"
    audio.write_bytes(b"\x00" * 16)
    error = run_json("upload", str(audio), exit_code=2)["error"]
    assert (error["error_code"], error["details"]) == ("USAGE_ERROR", {})
    assert "a token is required" in error["message"]


def test_an_unreachable_database_is_a_clear_failure(
    deployment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing listens at DATABASE_URL: sweep exits 1 with DATABASE_UNAVAILABLE, no traceback."""
    (port,) = free_ports(1)
    monkeypatch.setenv("DATABASE_URL", f"postgresql+psycopg://app@127.0.0.1:{port}/none")
    result = run("sweep")
    assert result.exit_code == 1
    assert "Traceback" not in result.output + result.stderr
    assert "helppet-recordings doctor" in result.stderr
    assert run_json("sweep", exit_code=1)["error"]["error_code"] == "DATABASE_UNAVAILABLE"
    found = {f["check"]: f for f in run_json("doctor", exit_code=1)["findings"]}
    assert found["database.reachable"]["status"] == "fail"
    assert found["database.migrations"]["status"] == "warn"


def test_the_entry_point_runs_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    """``helppet-recordings`` (cli.main) lists every command and exits 0 on --help."""
    with pytest.raises(SystemExit) as caught:
        main(["--help"])
    assert caught.value.code == 0
    listed = capsys.readouterr().out
    for command in ("migrate", "sweep", "reconcile", "purge", "doctor", "bucket-setup"):
        assert command in listed


def test_worker_once_transcribes_what_is_waiting(backends: Backends) -> None:
    """Worker --once takes the uploaded speech sample and leaves it transcribed; then nothing."""
    storage = backends.local_storage
    assert storage is not None
    sample = speech_sample()
    user = uuid.uuid4()
    ticket = backends.service.initiate_upload(
        user, {"filename": "hello.flac", "content_type": "audio/flac"}
    )
    upload(storage, dict(ticket.upload_fields), sample.data)
    backends.service.complete_upload(
        user, ticket.recording_id, {"file_size_bytes": len(sample.data)}
    )
    first = run_json("worker", "--once")
    assert (first["ok"], first["taken"], first["transcriber"]) == (True, 1, "local")
    done = backends.service.get_recording(user, ticket.recording_id)
    assert done.status.value == "transcribed"
    assert done.transcript_text
    assert run_json("worker", "--once")["taken"] == 0


def test_worker_refuses_an_unknown_transcriber(deployment: Path) -> None:
    """A transcriber the command does not know is a usage error (exit 2)."""
    assert run("worker", "--transcriber", "nope", "--once").exit_code == 2


@pytest.fixture
def aws_environment(
    deployment: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> pytest.MonkeyPatch:
    """Keys in the environment, AWS_REGION set the documented way, no AWS config files."""
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", "eu-west-3")
    return monkeypatch


def test_worker_gives_amazon_transcribe_the_deployments_region(
    aws_environment: pytest.MonkeyPatch,
) -> None:
    """AWS_REGION alone (botocore reads only AWS_DEFAULT_REGION) is enough for --transcriber aws."""
    made: list[str] = []
    make_client = boto3.client

    def recording_client(*args: Any, **kwargs: Any) -> Any:
        client = make_client(*args, **kwargs)
        made.append(f"{client.meta.service_model.service_name} {client.meta.region_name}")
        return client

    aws_environment.setattr(boto3, "client", recording_client)
    run_json("migrate")
    report = run_json("worker", "--once", "--transcriber", "aws")
    assert (report["ok"], report["taken"], report["transcriber"]) == (True, 0, "aws")
    assert "transcribe eu-west-3" in made


def test_a_worker_lease_beyond_30_days_is_a_usage_error(deployment: Path) -> None:
    """--lease-seconds above the service's 30-day bound is refused by the option (exit 2)."""
    refused = run("worker", "--once", "--lease-seconds", str(31 * 24 * 3600))
    assert refused.exit_code == 2
    assert "--lease-seconds" in refused.stderr


def test_worker_with_an_unusable_aws_configuration_exits_2(
    aws_environment: pytest.MonkeyPatch,
) -> None:
    """A profile botocore cannot find is a configuration error (exit 2), said cleanly."""
    run_json("migrate")
    aws_environment.setenv("AWS_PROFILE", "no-such-profile")
    error = run_json("worker", "--once", "--transcriber", "aws", exit_code=2)["error"]
    assert error["error_code"] == "CONFIGURATION_ERROR"
    assert "no-such-profile" in error["message"]
    text = run("worker", "--once", "--transcriber", "aws")
    assert text.exit_code == 2
    assert "Traceback" not in text.output + text.stderr
    assert "The aws transcriber cannot be built" in text.stderr
