"""docs/client.md's examples run as written, against the example app over HTTP."""

from __future__ import annotations

import contextlib
import io
import logging
import re
import secrets
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from examples.demo import tone_wav
from examples.fastapi_app.auth import mint_token
from examples.fastapi_app.main import create_app

from helppet_recordings import (
    InMemoryRepository,
    LocalStorage,
    RecordingService,
    RecordingSettings,
)
from helppet_recordings.client import RecordingUploader, RetryPolicy
from tests.support.asgi_server import ServerThread
from tests.support.audio import wav_file

pytestmark = pytest.mark.e2e

DOC = Path(__file__).resolve().parents[2] / "docs" / "client.md"
SECRET = "client-docs-jwt-secret-0123456789abcdefghij"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.DOTALL)


@pytest.fixture
def api_url(tmp_path: Path) -> Iterator[str]:
    """The example app on LocalStorage, in a thread; its URL."""
    server = _started(tmp_path)
    try:
        yield server.base_url
    finally:
        server.stop()


def _started(tmp_path: Path) -> ServerThread:
    """Serve the app on a socket bound first: LocalStorage's URLs must name its port."""
    holder: dict[str, object] = {}

    async def app(scope: object, receive: object, send: object) -> None:
        await holder["app"](scope, receive, send)  # type: ignore[operator]

    server = ServerThread(app)
    storage = LocalStorage(
        tmp_path / "files",
        base_url=server.base_url + "/local-storage",
        secret=secrets.token_urlsafe(32),
    )
    service = RecordingService(
        storage=storage, repository=InMemoryRepository(), settings=RecordingSettings()
    )
    holder["app"] = create_app(service, jwt_secret=SECRET, local_storage=storage)
    return server.start()


def test_upload_example_runs_as_written(
    api_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first example uploads visit.wav and prints the progress and the promised line."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HELPPET_API_URL", api_url)
    monkeypatch.setenv("HELPPET_API_TOKEN", mint_token(SECRET, uuid.uuid4()))
    (tmp_path / "visit.wav").write_bytes(tone_wav(seconds=3.0))
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        exec(compile(_python_blocks()[0], str(DOC), "exec"), {})  # noqa: S102 - our own docs
    lines = output.getvalue().splitlines()
    assert lines[0] == "0/96044 bytes"
    assert lines[-2] == "96044/96044 bytes"
    assert lines[-1] == "uploaded 96044"
    assert not (tmp_path / "visit.wav.upload-state.json").exists()


def test_every_example_compiles_and_the_policy_builds() -> None:
    """Every Python block is valid Python; the RetryPolicy example builds its two policies."""
    namespace: dict[str, object] = {}
    blocks = _python_blocks()
    for block in blocks:
        compile(block, str(DOC), "exec")
    exec(compile(blocks[1], str(DOC), "exec"), namespace)  # noqa: S102 - our own docs
    assert namespace["default"] == RetryPolicy()
    assert namespace["patient"] == RetryPolicy(attempts=30, timeout=3600.0, wait_max=120.0)


def test_the_logging_example_keeps_signed_urls_out_of_an_info_log(
    api_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """At INFO httpx logs each part's signed URL, as the doc says; its line stops that."""
    token = mint_token(SECRET, uuid.uuid4())
    httpx_logger = logging.getLogger("httpx")
    level = httpx_logger.level
    caplog.set_level(logging.INFO)

    def signed_lines() -> list[str]:
        caplog.clear()
        path = wav_file(tmp_path / "visit.wav", 9 * 1024 * 1024)  # two parts
        with RecordingUploader(api_url, token=token) as uploader:
            uploader.upload(path)
        return [r.getMessage() for r in caplog.records if "sig=" in r.getMessage()]

    try:
        assert any("HTTP Request: PUT" in line for line in signed_lines())
        exec(compile(_python_blocks()[2], str(DOC), "exec"), {})  # noqa: S102 - our own docs
        assert signed_lines() == []
    finally:
        httpx_logger.setLevel(level)
