"""``python -m examples.demo`` on a fresh environment: every step passes and the server stops.

The demo's worker runs the real LocalTranscriber on the packaged speech
sample, so this is one of the two tests that run PocketSphinx.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from helppet_recordings.transcription import speech_sample

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
STEPS = [
    ("upload (client)", "", "ok"),
    ("await transcript", "GET", "200"),
    ("list recordings", "GET", "200"),
    ("get download URL", "GET", "200"),
    ("download audio", "GET", "200"),
    ("delete recording", "DELETE", "204"),
    ("confirm it is gone", "GET", "404"),
]


def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    """The demo needs no configuration, transcribes its speech upload, and exits 0."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("HELPPET_", "AWS_", "S3_")) and k != "DATABASE_URL"
    }
    env["TMPDIR"] = str(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "examples.demo"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    for number, (title, method, status) in enumerate(STEPS, start=1):
        line = next((ln for ln in lines if ln.strip().startswith(f"{number}. {title}")), None)
        assert line is not None, result.stdout
        assert not method or f" {method} " in line
        assert f" {status} " in line
        assert " ms " in line
    sample = speech_sample()
    assert f"{len(sample.data):,} bytes, identical" in result.stdout
    uploaded = next(ln for ln in lines if ln.strip().startswith("1. upload (client)"))
    assert f"status uploaded, {len(sample.data):,} bytes verified" in uploaded
    assert f"progress at {len(sample.data):,} bytes" in uploaded
    awaited = next(ln for ln in lines if ln.strip().startswith("2. await transcript"))
    assert "status transcribed" in awaited
    measured = re.search(r"([0-9.]+) s of flac measured", awaited)
    assert measured is not None, awaited
    assert float(measured.group(1)) == pytest.approx(sample.duration_seconds, abs=0.3)
    transcript = next(ln for ln in lines if ln.strip().startswith("transcript: "))
    heard = set(re.findall(r"[a-z']+", transcript.split(":", 1)[1].lower()))
    assert heard & set(re.findall(r"[a-z']+", sample.text.lower())), transcript
    assert "All 7 steps passed" in result.stdout
    assert lines[-1] == "Server stopped."
    assert list(tmp_path.iterdir()) == []  # the temporary data directory was removed
