"""A file that changes while it is uploaded: ``FILE_CHANGED``, and the upload is never completed."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from helppet_recordings.client import FileChangedError, RecordingUploader, RetryPolicy
from helppet_recordings.client._api import Session
from helppet_recordings.client._files import FileIdentity, read_range
from helppet_recordings.errors import ValidationError
from tests.support.asgi_server import ServerThread
from tests.support.fake_recordings_api import API, TOKEN, FakeRecordingsApi

MiB = 1024 * 1024
COMPLETE = "POST api.test/upload/complete/{id}"


pytestmark = pytest.mark.usefixtures("no_stamina_waits")


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
        "message": "The file's size changed since the upload started",
        "error_code": "FILE_CHANGED",
        "details": {"reason": "size"},
    }
    assert api.requests["PUT part"] == 1  # part 2's body failed before it reached storage
    assert api.requests[COMPLETE] == 0


def _rewrite(path: Path) -> None:
    """Save other bytes of the same size over ``path``, a second later (as another take is)."""
    mtime = path.stat().st_mtime_ns
    with path.open("r+b") as handle:
        handle.write(os.urandom(path.stat().st_size))
    os.utime(path, ns=(mtime + 10**9, mtime + 10**9))  # file systems with coarse clocks too


@pytest.mark.parametrize(("size", "parts_sent"), [(20 * MiB, 2), (16 * MiB, 2)])
def test_a_file_rewritten_during_a_multipart_upload_is_never_completed(
    api: FakeRecordingsApi, tmp_path: Path, size: int, parts_sent: int
) -> None:
    """Rewritten after part 2 was read: the next part or completion finds it (a mix was stored)."""
    path = _file(tmp_path, size)
    api.script("PUT part", lambda _r: None, lambda _r: _rewrite(path))
    with _uploader(api) as uploader, pytest.raises(FileChangedError) as caught:
        uploader.upload(path)
    assert caught.value.details == {"reason": "modified"}
    assert api.requests["PUT part"] == parts_sent
    assert api.requests[COMPLETE] == 0
    assert [r.status for r in api.recordings.values()] == ["uploading"]


def test_a_file_removed_during_a_multipart_upload_is_file_changed(
    api: FakeRecordingsApi, tmp_path: Path
) -> None:
    """The file gone before its next part: FILE_CHANGED with reason ``missing``."""
    path = _file(tmp_path, 20 * MiB)
    api.script("PUT part", lambda _r: path.unlink())
    with _uploader(api) as uploader, pytest.raises(FileChangedError) as caught:
        uploader.upload(path)
    assert caught.value.details == {"reason": "missing"}
    assert api.requests[COMPLETE] == 0


def test_a_file_rewritten_during_a_post_upload_is_never_completed(
    api: FakeRecordingsApi, tmp_path: Path
) -> None:
    """Rewritten while the form went out: FILE_CHANGED before completion (was the server's 409)."""
    path = _file(tmp_path, MiB)
    api.script("POST form", lambda _r: _rewrite(path))
    with _uploader(api) as uploader, pytest.raises(FileChangedError) as caught:
        uploader.upload(path)
    assert caught.value.details == {"reason": "modified"}
    assert api.requests[COMPLETE] == 0


def test_a_post_upload_whose_file_changed_before_a_retry_is_not_sent_again(
    api: FakeRecordingsApi, tmp_path: Path
) -> None:
    """A retry of the form finds the file changed: FILE_CHANGED, not another send."""
    path = _file(tmp_path, MiB)

    def cut(_request: httpx.Request) -> httpx.Response:
        os.truncate(path, MiB // 2)
        return httpx.Response(503)

    api.script("POST form", cut)
    with _uploader(api) as uploader, pytest.raises(FileChangedError) as caught:
        uploader.upload(path)
    assert caught.value.details == {"reason": "size"}
    assert api.requests["POST form"] == 1


def test_a_part_written_while_it_is_read_is_file_changed(tmp_path: Path) -> None:
    """The bytes of a part read while the file was written are refused once the part is read."""
    path = _file(tmp_path, MiB)
    identity = FileIdentity.of(path)
    body = read_range(path, 0, MiB, identity=identity)
    first = next(body)
    _rewrite(path)
    with pytest.raises(FileChangedError) as caught:
        b"".join([first, *body])
    assert caught.value.details == {"reason": "modified"}


def test_a_part_cut_short_while_it_is_read_is_file_changed(tmp_path: Path) -> None:
    """A file truncated in the middle of a part's read ends it with FILE_CHANGED."""
    path = _file(tmp_path, MiB)
    body = read_range(path, 0, MiB, identity=FileIdentity.of(path))
    next(body)
    os.truncate(path, 1000)
    with pytest.raises(FileChangedError, match="shorter") as caught:
        list(body)
    assert caught.value.details == {"reason": "size"}


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


def _replace_with_directory(path: Path) -> None:
    path.unlink()
    path.mkdir()


@pytest.mark.parametrize("size", [20 * MiB, MiB], ids=["multipart", "post"])
def test_a_file_replaced_by_a_directory_during_an_upload_is_file_changed(
    api: FakeRecordingsApi, tmp_path: Path, size: int
) -> None:
    """The OS refusing to read the file: FILE_CHANGED naming its error, never the path."""
    path = _file(tmp_path, size)
    api.script("PUT part", lambda _r: _replace_with_directory(path))
    api.script("POST api.test/upload/initiate", lambda _r: _replace_with_directory(path))
    with _uploader(api) as uploader, pytest.raises(FileChangedError) as caught:
        uploader.upload(path)
    assert caught.value.to_dict() == {
        "message": "The file could not be read since the upload started",
        "error_code": "FILE_CHANGED",
        "details": {"reason": "unreadable", "os_error": "IsADirectoryError"},
    }
    assert caught.value.__cause__ is None
    assert str(tmp_path) not in str(caught.value)
    assert api.requests[COMPLETE] == 0


@pytest.mark.parametrize("kind", ["missing", "directory"])
def test_a_path_that_is_no_readable_file_is_a_validation_error(
    api: FakeRecordingsApi, tmp_path: Path, kind: str
) -> None:
    """Before anything is sent: VALIDATION_ERROR for ``path``, naming the OS error, not the path."""
    path = tmp_path / "Bello visit.wav"
    if kind == "directory":
        path.mkdir()
    with _uploader(api) as uploader, pytest.raises(ValidationError) as caught:
        uploader.upload(path)
    assert caught.value.details["errors"] == [
        {"field": "path", "message": "cannot be read as a file"}
    ]
    assert caught.value.details["os_error"] == (
        "FileNotFoundError" if kind == "missing" else "IsADirectoryError"
    )
    assert (caught.value.__cause__, caught.value.__context__) == (None, None)
    assert "Bello" not in str(caught.value.to_dict())
    assert sum(api.requests.values()) == 0
