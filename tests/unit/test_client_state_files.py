"""State files the uploader cannot use: garbled ones are ignored, unusable paths are refused."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from helppet_recordings.client import RecordingUploader, load_state
from helppet_recordings.client._files import FileIdentity
from helppet_recordings.client._state import UploadState, save_state
from helppet_recordings.errors import RecordingError, ValidationError
from tests.support.fake_recordings_api import API, TOKEN, FakeRecordingsApi

SIZE = 5000
MiB = 1024 * 1024


pytestmark = pytest.mark.usefixtures("no_stamina_waits")


def _uploader(api: FakeRecordingsApi) -> RecordingUploader:
    return RecordingUploader(API, token=TOKEN, transport=api.transport)


def _file(tmp_path: Path, size: int = SIZE) -> Path:
    path = tmp_path / "secret-visit-name.wav"
    path.write_bytes(os.urandom(size))
    return path


def _matching_state(path: Path, **changes: object) -> str:
    """The JSON of a state written for ``path`` as it is now (any request), with ``changes``."""
    state = UploadState.start(FileIdentity.of(path), kind="post", idempotency_key="k-1")
    return json.dumps({**json.loads(state.model_dump_json()), **changes})


@pytest.mark.parametrize(
    "garbled",
    [
        b"\xff\xfe{not utf-8",
        b'{"version": 1, "idempotency_key"',
        b"[]",
        b"",
    ],
    ids=["not-utf-8", "truncated", "no-object", "empty"],
)
def test_a_garbled_state_file_is_ignored_with_a_warning(
    api: FakeRecordingsApi, tmp_path: Path, caplog: pytest.LogCaptureFixture, garbled: bytes
) -> None:
    """Bytes that are no state start a new upload; the warning names neither file nor content."""
    path = _file(tmp_path)
    state = tmp_path / "state.json"
    state.write_bytes(garbled)
    assert load_state(state) is None
    with caplog.at_level(logging.WARNING, "helppet_recordings"), _uploader(api) as uploader:
        recording = uploader.upload(path, state_file=state)
    assert api.recordings[recording.id].stored == path.read_bytes()
    assert not state.exists()
    assert "cannot be read" in caplog.text
    assert "secret-visit-name" not in caplog.text
    assert str(tmp_path) not in caplog.text
    assert "not-utf-8" not in caplog.text


@pytest.mark.parametrize(
    "key",
    ["has space\n", "new\nline", "x" * 129, "slash/key", ""],
    ids=["space-newline", "newline", "too-long", "slash", "empty"],
)
def test_a_state_whose_key_the_server_would_refuse_is_ignored(
    api: FakeRecordingsApi, tmp_path: Path, caplog: pytest.LogCaptureFixture, key: str
) -> None:
    """A state for this very file whose idempotency key is no valid key: a new upload, twice."""
    path = _file(tmp_path)
    state = tmp_path / "state.json"
    for _ in range(2):
        state.write_text(_matching_state(path, idempotency_key=key, request_sha256=None))
        assert load_state(state) is None
        with caplog.at_level(logging.WARNING, "helppet_recordings"), _uploader(api) as uploader:
            recording = uploader.upload(path, state_file=state)
        assert api.recordings[recording.id].stored == path.read_bytes()
        assert api.recordings[recording.id].idempotency_key != key
    assert key.strip() == "" or key.strip() not in caplog.text


def test_a_state_file_that_is_a_directory_is_refused_before_anything_is_sent(
    api: FakeRecordingsApi, tmp_path: Path
) -> None:
    """``state_file`` naming a directory is VALIDATION_ERROR naming the argument, not the path."""
    path = _file(tmp_path)
    directory = tmp_path / "state-dir"
    directory.mkdir()
    with _uploader(api) as uploader, pytest.raises(ValidationError) as caught:
        uploader.upload(path, state_file=directory)
    assert caught.value.details["errors"][0]["field"] == "state_file"
    assert str(tmp_path) not in str(caught.value.to_dict())
    assert sum(api.requests.values()) == 0


def test_a_state_file_that_cannot_be_written_is_a_recording_error(
    api: FakeRecordingsApi, tmp_path: Path
) -> None:
    """A state file under a path that is a file cannot be saved: a RecordingError, not OSError."""
    path = _file(tmp_path)
    blocker = tmp_path / "blocker"
    blocker.write_bytes(b"")
    with _uploader(api) as uploader, pytest.raises(RecordingError) as caught:
        uploader.upload(path, state_file=blocker / "state.json")
    assert isinstance(caught.value.__cause__, OSError)
    assert str(tmp_path) not in str(caught.value.to_dict())


def test_a_valid_state_still_resumes(api: FakeRecordingsApi, tmp_path: Path) -> None:
    """The stricter reading keeps every state the uploader writes."""
    path = _file(tmp_path)
    state = tmp_path / "state.json"
    saved = UploadState.start(FileIdentity.of(path), kind="post", idempotency_key="a.B:c-1_2")
    save_state(state, saved)
    assert load_state(state) == saved
