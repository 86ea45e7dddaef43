"""Answers of the right shape whose values the uploader cannot use: a RecordingError, no leak."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from helppet_recordings.client import RecordingUploader
from helppet_recordings.errors import RecordingError, UploadIncompleteError
from tests.support.fake_recordings_api import API, TOKEN, FakeRecordingsApi, error, s3_error

MiB = 1024 * 1024
PART = 8 * MiB


pytestmark = pytest.mark.usefixtures("no_stamina_waits")


def _upload(api: FakeRecordingsApi, tmp_path: Path, size: int) -> None:
    path = tmp_path / "visit.wav"
    path.write_bytes(os.urandom(size))
    with RecordingUploader(API, token=TOKEN, transport=api.transport, parallel=1) as uploader:
        uploader.upload(path)


@pytest.mark.parametrize(
    "missing",
    [["a"], ["1e999"], 3, None, [{"part": 1}], [0], [-1], [4], [True], [1.0], "1"],
    ids=repr,
)
def test_an_upload_incomplete_naming_no_usable_parts_is_a_recording_error(
    tmp_path: Path, missing: Any
) -> None:
    """``details.missing_parts`` that is no list of this upload's part numbers is not used."""
    api = FakeRecordingsApi()
    api.script(
        "POST api.test/upload/complete/{id}",
        lambda _r: error(409, "UPLOAD_INCOMPLETE", "parts missing", missing_parts=missing),
    )
    with pytest.raises(RecordingError) as caught:
        _upload(api, tmp_path, 2 * PART + 10)
    assert type(caught.value) is RecordingError
    assert isinstance(caught.value.__cause__, UploadIncompleteError)
    assert "UPLOAD_INCOMPLETE" in caught.value.message
    assert caught.value.details["part_count"] == 3
    assert api.requests["POST api.test/upload/complete/{id}"] == 1
    assert api.requests["POST api.test/upload/multipart/{id}/parts"] == 0


def test_an_upload_incomplete_with_infinite_numbers_is_a_recording_error(tmp_path: Path) -> None:
    """A JSON number too large for a float (``1e999``, read as infinity) is no part number."""
    api = FakeRecordingsApi()
    body = b'{"message": "x", "error_code": "UPLOAD_INCOMPLETE", '
    body += b'"details": {"missing_parts": [1e999]}}'
    api.script(
        "POST api.test/upload/complete/{id}",
        lambda _r: httpx.Response(409, content=body, headers={"Content-Type": "application/json"}),
    )
    with pytest.raises(RecordingError) as caught:
        _upload(api, tmp_path, PART + 10)
    assert type(caught.value) is RecordingError


@pytest.mark.parametrize("missing", [[], [2], [1, 2]])
def test_an_upload_incomplete_naming_real_parts_still_sends_them(
    tmp_path: Path, missing: list[int]
) -> None:
    """A usable answer is acted on as before: the parts are signed again and completion asked."""
    api = FakeRecordingsApi()
    api.script(
        "POST api.test/upload/complete/{id}",
        lambda _r: error(409, "UPLOAD_INCOMPLETE", "parts missing", missing_parts=missing),
    )
    _upload(api, tmp_path, PART + 10)
    assert api.requests["POST api.test/upload/complete/{id}"] == 2
    assert api.requests["POST api.test/upload/multipart/{id}/parts"] == 1


def _plan(rid: str, part_size: int, parts: list[tuple[int, int]]) -> httpx.Response:
    """A part plan for recording ``rid``: ``(part_number, size)`` per part URL."""
    return httpx.Response(
        200,
        json={
            "recording_id": rid,
            "s3_key": f"recordings/{rid}",
            "bucket": "fake",
            "part_size": part_size,
            "parts": [
                {
                    "part_number": n,
                    "url": f"http://in-memory.invalid/{n}",
                    "size": size,
                    "expires_in": 3600,
                }
                for n, size in parts
            ],
            "uploaded_parts": [],
            "expires_in": 3600,
            "max_file_size": 10**9,
        },
    )


SIZE = 2 * PART + 10
"""Three parts: 8 MiB, 8 MiB, 10 bytes."""

BAD_PLANS = {
    "part-0": (PART, [(0, PART), (1, PART), (2, 10)]),
    "part-minus-1": (PART, [(-1, PART), (1, PART), (2, PART), (3, 10)]),
    "part-past-the-file": (PART, [(1, PART), (2, PART), (3, 10), (4, 10)]),
    "part-10001": (PART, [(10_001, PART)]),
    "part-size-0": (0, [(1, PART), (2, PART), (3, 10)]),
    "part-size-negative": (-PART, [(1, PART), (2, PART), (3, 10)]),
    "size-0": (PART, [(1, 0), (2, PART), (3, 10)]),
    "size-negative": (PART, [(1, -1), (2, PART), (3, 10)]),
    "size-too-long": (PART, [(1, PART), (2, PART), (3, PART)]),
    "size-short": (PART, [(1, PART - 1), (2, PART), (3, 10)]),
    "twice": (PART, [(1, PART), (1, PART), (2, PART), (3, 10)]),
    "part-size-too-small": (1, [(1, 1)]),  # 16 MiB in 1-byte parts: over 10,000 parts
}


@pytest.mark.parametrize(("part_size", "parts"), BAD_PLANS.values(), ids=BAD_PLANS.keys())
def test_an_initiate_answer_that_does_not_fit_the_file_is_refused(
    tmp_path: Path, part_size: int, parts: list[tuple[int, int]]
) -> None:
    """No byte is read or sent for a plan that does not cut this file; nothing is completed."""
    api = FakeRecordingsApi()
    api.script(
        "POST api.test/upload/multipart/initiate",
        lambda _r: _plan(str(uuid.uuid4()), part_size, parts),
    )
    with pytest.raises(RecordingError) as caught:
        _upload(api, tmp_path, SIZE)
    assert type(caught.value) is RecordingError
    assert caught.value.message == "The server's part plan does not fit the file"
    assert api.requests["PUT part"] == 0
    assert api.requests["POST api.test/upload/complete/{id}"] == 0


def _renewal(part_size: int, parts: list[tuple[int, int]], rid: str | None = None) -> object:
    def reply(request: httpx.Request) -> httpx.Response:
        return _plan(rid or request.url.path.split("/")[-2], part_size, parts)

    return reply


@pytest.mark.parametrize(
    ("part_size", "parts", "rid"),
    [
        (PART, [(1, -1)], None),
        (PART, [(1, 0)], None),
        (PART, [(0, PART)], None),
        (PART // 2, [(1, PART // 2)], None),  # another part size than the plan's
        (PART, [(1, PART)], str(uuid.uuid4())),  # another recording's URL
    ],
    ids=["size-negative", "size-0", "part-0", "other-part-size", "other-recording"],
)
def test_a_renewal_that_does_not_fit_the_plan_is_refused(
    tmp_path: Path, part_size: int, parts: list[tuple[int, int]], rid: str | None
) -> None:
    """A part URL renewed after storage refused it as expired is checked like the first plan."""
    api = FakeRecordingsApi()
    api.script("PUT part", lambda _r: s3_error(403, "AccessDenied", "Request has expired"))
    api.script("POST api.test/upload/multipart/{id}/parts", _renewal(part_size, parts, rid))  # type: ignore[arg-type]
    with pytest.raises(RecordingError) as caught:
        _upload(api, tmp_path, SIZE)
    assert type(caught.value) is RecordingError
    assert caught.value.message == "The server's part plan does not fit the file"
    assert api.requests["PUT part"] == 1
    assert api.requests["POST api.test/upload/complete/{id}"] == 0


def test_a_last_part_shorter_than_the_others_and_a_one_part_file_fit(tmp_path: Path) -> None:
    """The server's own plans pass: a short last part, and a file of one part."""
    for size in (SIZE, PART, PART + 1):
        api = FakeRecordingsApi()
        _upload(api, tmp_path, size)
        assert sum(api.part_bytes.values()) == size
