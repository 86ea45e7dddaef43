"""``helppet-recordings upload``: its command line, before any network."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from helppet_recordings.cli._app import cli


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
    import stamina  # noqa: PLC0415

    audio = tmp_path / "visit.wav"
    audio.write_bytes(b"RIFF0000WAVE")
    monkeypatch.setenv("HELPPET_API_TOKEN", "t")
    with stamina.set_testing(True, attempts=2, cap=True):
        result = runner.invoke(cli, ["upload", str(audio), "--api", "http://127.0.0.1:9", "--json"])
    assert result.exit_code == 1
    assert '"CONNECTION_FAILED"' in result.output
    assert (tmp_path / "visit.wav.upload-state.json").exists()
