"""A file that changes while it is uploaded: ``FILE_CHANGED``, and the upload is never completed."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import stamina
from starlette.types import Receive, Scope, Send

from helppet_recordings.client import FileChangedError, RecordingUploader, RetryPolicy
from helppet_recordings.client._api import Session
from tests.support.asgi_server import ServerThread
from tests.support.fake_recordings_api import API, TOKEN, FakeRecordingsApi

MiB = 1024 * 1024
COMPLETE = "POST api.test/upload/complete/{id}"


@pytest.fixture(autouse=True)
def no_waiting() -> Iterator[None]:
    """Stamina retries without sleeping in these tests."""
    with stamina.set_testing(True, attempts=6, cap=True):
        yield


@pytest.fixture
def api() -> FakeRecordingsApi:
    """A fresh twin of the API and its storage."""
    return FakeRecordingsApi()


def _file(tmp_path: Path, size: int) -> Path:
    path = tmp_path / "visit.wav"
    path.write_bytes(os.urandom(size))
    return path


def _uploader(api: FakeRecordingsApi) -> RecordingUploader:
    return RecordingUploader(API, token=TOKEN, transport=api.transport, parallel=1)


def test_a_file_cut_short_during_a_multipart_upload_is_file_changed(
    api: FakeRecordingsApi, tmp_path: Path
) -> None:
    """Part 2 finds the file shorter: FILE_CHANGED (was a raw OSError), no retry, no completion."""
    path = _file(tmp_path, 20 * MiB)

    def truncate(_request: httpx.Request) -> None:
        os.truncate(path, 9 * MiB)  # after part 1's body was read: part 2 runs out

    api.script("PUT part", truncate)
    with _uploader(api) as uploader, pytest.raises(FileChangedError) as caught:
        uploader.upload(path)
    assert caught.value.to_dict() == {
        "message": "The file is shorter than when the upload started",
        "error_code": "FILE_CHANGED",
        "details": {"reason": "size"},
    }
    assert api.requests["PUT part"] == 1  # part 2's body failed before it reached storage
    assert api.requests[COMPLETE] == 0


async def _drain_and_accept(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b""})


def test_a_file_change_raised_by_the_body_passes_through_send_over_http() -> None:
    """Over a real socket the body's FILE_CHANGED is raised as it is: not retried, not wrapped."""
    attempts = 0

    def body() -> Iterator[bytes]:
        yield b"x" * 1024
        raise FileChangedError("The file is shorter than when the upload started", reason="size")

    with ServerThread(_drain_and_accept) as server, httpx.Client() as http:

        def build() -> httpx.Request:
            nonlocal attempts
            attempts += 1
            headers = {"Content-Length": "2048"}
            return http.build_request(
                "PUT", server.base_url + "/part", content=body(), headers=headers
            )

        with pytest.raises(FileChangedError) as caught:
            Session(http, RetryPolicy()).send(build, storage=True)
    assert caught.value.details == {"reason": "size"}
    assert attempts == 1
