"""``helppet-recordings upload``: its command line, before any network."""

from __future__ import annotations

import http.server
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import stamina
from click.testing import CliRunner

from helppet_recordings.cli._app import cli
from tests.support.servers import HOST


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """A runner with no token in the environment."""
    monkeypatch.delenv("HELPPET_API_TOKEN", raising=False)
    monkeypatch.delenv("HELPPET_API_URL", raising=False)
    return CliRunner()


def test_upload_without_a_token_is_a_usage_error(runner: CliRunner, tmp_path: Path) -> None:
    """No --token and no HELPPET_API_TOKEN: exit 2 and say what is missing."""
    audio = tmp_path / "visit.wav"
    audio.write_bytes(b"RIFF")
    result = runner.invoke(cli, ["upload", str(audio)])
    assert result.exit_code == 2
    assert "HELPPET_API_TOKEN" in result.output


def test_upload_of_a_missing_file_is_a_usage_error(runner: CliRunner, tmp_path: Path) -> None:
    """A FILE that does not exist: exit 2 before anything is sent."""
    result = runner.invoke(cli, ["upload", str(tmp_path / "nope.wav"), "--token", "t"])
    assert result.exit_code == 2


def test_upload_to_an_unreachable_api_fails_with_status_1(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing listening: every retry fails to connect; exit 1 with the error code."""
    audio = tmp_path / "visit.wav"
    audio.write_bytes(b"RIFF0000WAVE")
    monkeypatch.setenv("HELPPET_API_TOKEN", "t")
    with stamina.set_testing(True, attempts=2, cap=True):
        result = runner.invoke(cli, ["upload", str(audio), "--api", "http://127.0.0.1:9", "--json"])
    assert result.exit_code == 1
    assert '"CONNECTION_FAILED"' in result.output
    assert (tmp_path / "visit.wav.upload-state.json").exists()


class _Unavailable(http.server.BaseHTTPRequestHandler):
    """Answers every request 503, as an API behind a load balancer with no backend.

    ``Retry-After: 0`` keeps the client's waits at nothing.
    """

    def do_POST(self) -> None:
        """Answer 503, asking for no wait."""
        self.send_response(503)
        self.send_header("Retry-After", "0")
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", "4")
        self.end_headers()
        self.wfile.write(b"busy")

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base's name
        """Log nothing."""


@pytest.fixture
def unavailable_api() -> Iterator[str]:
    """The base URL of a server that answers every request 503."""
    server = http.server.ThreadingHTTPServer((HOST, 0), _Unavailable)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{HOST}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _upload(runner: CliRunner, tmp_path: Path, api: str, *options: str) -> tuple[int, str, str]:
    """Upload a small file to ``api``, three attempts a request; the status, stdout, stderr."""
    audio = tmp_path / "visit.wav"
    audio.write_bytes(b"RIFF0000WAVE")
    with stamina.set_testing(True, attempts=3, cap=True):
        result = runner.invoke(cli, ["upload", str(audio), "--api", api, "--token", "t", *options])
    return result.exit_code, result.stdout, result.stderr


def _stamina_records(caplog: pytest.LogCaptureFixture) -> list[str]:
    """What stamina's own instrumentation logged (pytest's handler takes it from stderr)."""
    return [record.getMessage() for record in caplog.records if record.name == "stamina"]


def test_upload_reports_retries_in_its_own_words(
    runner: CliRunner, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Each retry is one line of the command's own on stderr; stamina logs nothing."""
    caplog.set_level(logging.DEBUG)
    status, stdout, stderr = _upload(runner, tmp_path, "http://127.0.0.1:9")
    assert (status, stdout) == (1, "")
    assert stderr.splitlines() == [
        "Retrying in 0.0 s (retry 1): the server could not be reached.",
        "Retrying in 0.0 s (retry 2): the server could not be reached.",
        "Error: The server could not be reached; try again later (CONNECTION_FAILED)",
    ]
    assert _stamina_records(caplog) == []


def test_upload_names_the_status_it_retries(
    runner: CliRunner, tmp_path: Path, unavailable_api: str
) -> None:
    """A 503 answer is retried and reported by its status, never by the URL."""
    status, _stdout, stderr = _upload(runner, tmp_path, unavailable_api)
    assert status == 1
    retries = [line for line in stderr.splitlines() if line.startswith("Retrying")]
    assert retries == [
        "Retrying in 0.0 s (retry 1): the server answered HTTP 503.",
        "Retrying in 0.0 s (retry 2): the server answered HTTP 503.",
    ]
    assert "stamina" not in stderr
    assert unavailable_api not in stderr


def test_upload_with_json_reports_no_retries(
    runner: CliRunner, tmp_path: Path, unavailable_api: str, caplog: pytest.LogCaptureFixture
) -> None:
    """With --json stderr stays empty through the retries; stdout is the one JSON error."""
    caplog.set_level(logging.DEBUG)
    status, stdout, stderr = _upload(runner, tmp_path, unavailable_api, "--json")
    assert (status, stderr) == (1, "")
    assert '"ok": false' in stdout
    assert _stamina_records(caplog) == []


@pytest.mark.parametrize("json_mode", [False, True])
def test_the_program_prints_no_stamina_lines(
    tmp_path: Path, unavailable_api: str, *, json_mode: bool
) -> None:
    """Run as a program (logging not configured), ten attempts leave only the command's lines."""
    audio = tmp_path / "visit.wav"
    audio.write_bytes(b"RIFF0000WAVE")
    command = [sys.executable, "-m", "helppet_recordings.cli", "upload", str(audio)]
    command += ["--api", unavailable_api, "--token", "t", *(["--json"] if json_mode else [])]
    environment = {k: v for k, v in os.environ.items() if not k.startswith("HELPPET_")}
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=120, env=environment, check=False
    )
    assert done.returncode == 1
    assert "stamina" not in done.stderr
    retries = [line for line in done.stderr.splitlines() if line.startswith("Retrying")]
    expected = [
        f"Retrying in 0.0 s (retry {n}): the server answered HTTP 503." for n in range(1, 10)
    ]
    assert retries == ([] if json_mode else expected)
    if json_mode:
        assert done.stderr == ""


def test_upload_restores_the_retry_hooks(runner: CliRunner, tmp_path: Path) -> None:
    """The command's retry reporting ends with it: stamina's hooks are as they were."""
    from stamina import instrumentation  # noqa: PLC0415

    seen: list[int] = []

    def own_hook(details: instrumentation.RetryDetails) -> None:
        """A hook the embedding program installed."""
        seen.append(details.retry_num)

    instrumentation.set_on_retry_hooks([own_hook])
    try:
        _upload(runner, tmp_path, "http://127.0.0.1:9", "--json")
        assert instrumentation.get_on_retry_hooks() == (own_hook,)
        assert seen == []  # the command's retries were its own
    finally:
        instrumentation.set_on_retry_hooks(None)
