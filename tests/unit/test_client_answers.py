"""Answers the uploader did not expect: storage's transient codes, bodies it cannot read."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from helppet_recordings.client import RecordingUploader
from helppet_recordings.errors import RecordingError, StorageError
from tests.support.fake_recordings_api import API, TOKEN, FakeRecordingsApi, s3_error

MiB = 1024 * 1024
IDLE = "Your socket connection to the server was not read from or written to within the timeout"


pytestmark = pytest.mark.usefixtures("no_stamina_waits")


def _undecodable(status: int, **headers: str) -> httpx.Response:
    """An answer claiming a gzip body that is no gzip, read (and found corrupt) by the client."""
    return httpx.Response(
        status,
        headers={"Content-Encoding": "gzip", **headers},
        stream=httpx.ByteStream(b"not gzip"),
    )


def _upload(api: FakeRecordingsApi, tmp_path: Path, size: int) -> None:
    path = tmp_path / "visit.wav"
    path.write_bytes(os.urandom(size))
    with RecordingUploader(API, token=TOKEN, transport=api.transport, parallel=1) as uploader:
        uploader.upload(path)


@pytest.mark.parametrize("status", [400, 502])
def test_an_undecodable_api_error_is_a_recording_error_with_its_status(
    tmp_path: Path, status: int
) -> None:
    """A corrupt error body raised httpx.DecodingError; it is the server's status, unexplained."""
    api = FakeRecordingsApi()
    api.script("POST api.test/upload/initiate", *[lambda _r: _undecodable(status)] * 6)
    with pytest.raises(RecordingError) as caught:
        _upload(api, tmp_path, 1024)
    assert type(caught.value) is RecordingError
    assert (caught.value.error_code, caught.value.http_status) == (f"HTTP_{status}", status)
    assert api.requests["POST api.test/upload/initiate"] == (6 if status == 502 else 1)


def test_an_undecodable_api_success_is_an_answer_not_understood(tmp_path: Path) -> None:
    """A 200 whose body cannot be decoded is a RecordingError naming the status."""
    api = FakeRecordingsApi()
    api.script("POST api.test/upload/initiate", lambda _r: _undecodable(200))
    with pytest.raises(RecordingError, match="does not understand") as caught:
        _upload(api, tmp_path, 1024)
    assert caught.value.details == {"http_status": 200}


def test_an_undecodable_storage_refusal_is_a_storage_error(tmp_path: Path) -> None:
    """Storage's 400 with a corrupt body is StorageError with the status as its code."""
    api = FakeRecordingsApi()
    api.script("PUT part", lambda _r: _undecodable(400))
    with pytest.raises(StorageError) as caught:
        _upload(api, tmp_path, 9 * MiB)
    assert caught.value.details == {"storage_error": "HTTP400", "http_status": 400}


def test_a_stored_part_with_an_undecodable_body_counts_as_stored(tmp_path: Path) -> None:
    """Storage's 200 says the part is stored, whatever its body; the upload completes."""
    api = FakeRecordingsApi()

    def stored_then_garbled(request: httpx.Request) -> httpx.Response:
        api.handle(request)  # stored for real (this script is consumed: no loop)
        return _undecodable(200, ETag='"x"')

    api.script("PUT part", stored_then_garbled)
    _upload(api, tmp_path, 9 * MiB)
    assert [r.status for r in api.recordings.values()] == ["uploaded"]


@pytest.mark.parametrize(("route", "size"), [("PUT part", 9 * MiB), ("POST form", 1024)])
def test_storage_request_timeout_is_retried(tmp_path: Path, route: str, size: int) -> None:
    """S3's transient 400 RequestTimeout was raised as StorageError; the request is sent again."""
    api = FakeRecordingsApi()
    api.script(route, lambda _r: s3_error(400, "RequestTimeout", IDLE))
    _upload(api, tmp_path, size)
    assert [r.status for r in api.recordings.values()] == ["uploaded"]
    assert api.requests[route] == (3 if route == "PUT part" else 2)


def test_storage_request_timeout_through_every_attempt_is_raised(tmp_path: Path) -> None:
    """Still timing out after the last attempt: StorageError with S3's code."""
    api = FakeRecordingsApi()
    api.script("PUT part", *[lambda _r: s3_error(400, "RequestTimeout", IDLE)] * 6)
    with pytest.raises(StorageError) as caught:
        _upload(api, tmp_path, 8 * MiB)  # one part
    assert caught.value.details == {"storage_error": "RequestTimeout", "http_status": 400}
    assert api.requests["PUT part"] == 6


def test_a_part_the_renewal_neither_offers_nor_holds_is_left_to_completion(
    tmp_path: Path,
) -> None:
    """Part 1's renewal has no URL for it and no record of it: completion finds it missing.

    The part is not sent again on the spot and the upload does not fail: completion
    reports it missing (UPLOAD_INCOMPLETE), it is signed afresh and sent, and the upload
    completes with the file's bytes.
    """
    api = FakeRecordingsApi()
    parts_route = "POST api.test/upload/multipart/{id}/parts"

    def offers_nothing(request: httpx.Request) -> httpx.Response:
        plan = api._answer(parts_route, request).json()
        return httpx.Response(200, json={**plan, "parts": [], "uploaded_parts": []})

    api.script("PUT part", lambda _r: s3_error(403, "AccessDenied", "Request has expired"))
    api.script(parts_route, offers_nothing)
    path = tmp_path / "visit.wav"
    path.write_bytes(os.urandom(8 * MiB + 10))
    sent: list[tuple[int, int]] = []
    with RecordingUploader(API, token=TOKEN, transport=api.transport, parallel=1) as uploader:
        recording = uploader.upload(path, progress=lambda done, total: sent.append((done, total)))
    assert api.recordings[recording.id].stored == path.read_bytes()
    assert api.requests["PUT part"] == 3  # part 1 refused, part 2, part 1 after completion
    assert api.requests[parts_route] == 2  # the renewal, then the parts completion found missing
    assert api.requests["POST api.test/upload/complete/{id}"] == 2
    assert dict(api.part_bytes) == {1: 8 * MiB, 2: 10}
    assert [done for done, _ in sent] == sorted({done for done, _ in sent})  # never back
    assert sent[-1] == (8 * MiB + 10,) * 2
