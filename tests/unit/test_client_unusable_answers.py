"""Answers of the right shape whose values the uploader cannot use: a RecordingError, no leak."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import stamina

from helppet_recordings.client import RecordingUploader
from helppet_recordings.errors import RecordingError, UploadIncompleteError
from tests.support.fake_recordings_api import API, TOKEN, FakeRecordingsApi, error

MiB = 1024 * 1024
PART = 8 * MiB


@pytest.fixture(autouse=True)
def no_waiting() -> Iterator[None]:
    """Stamina retries without sleeping in these tests."""
    with stamina.set_testing(True, attempts=6, cap=True):
        yield


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
