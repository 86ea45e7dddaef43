"""A part storage holds counts as sent only when its ETag shows it holds this file's bytes."""

from __future__ import annotations

import os
import secrets
import uuid
from pathlib import Path

import httpx
import pytest

from helppet_recordings.client import RecordingUploader, load_state
from helppet_recordings.errors import IdempotencyConflictError, StorageError, UploadNotFoundError
from tests.support.fake_recordings_api import API, TOKEN, FakeRecordingsApi, error, s3_error

MiB = 1024 * 1024
PART = 8 * MiB
SIZE = 3 * PART


pytestmark = pytest.mark.usefixtures("no_stamina_waits")


def _uploader(api: FakeRecordingsApi, **options: object) -> RecordingUploader:
    return RecordingUploader(API, token=TOKEN, transport=api.transport, **options)  # type: ignore[arg-type]


def _cut_off(api: FakeRecordingsApi, path: Path, **options: object) -> None:
    """Upload ``path`` one part at a time until storage refuses part 3: parts 1 and 2 are held."""
    api.script("PUT part", lambda _r: None, lambda _r: None, lambda _r: s3_error(400, "No", "x"))
    with _uploader(api, parallel=1) as uploader, pytest.raises(StorageError):
        uploader.upload(path, **options)  # type: ignore[arg-type]


def _stored(api: FakeRecordingsApi, rid: uuid.UUID) -> bytes:
    stored = api.recordings[rid].stored
    assert stored is not None
    return stored


@pytest.mark.parametrize(
    "listed",
    [
        lambda _n, etag: etag,
        lambda _n, _etag: None,
        lambda _n, _etag: secrets.token_hex(16),  # an SSE-KMS part: an ETag that is no MD5
        lambda _n, etag: f'"{etag.upper()}"',
    ],
    ids=["md5", "none", "not-md5", "quoted-upper"],
)
def test_a_rewritten_file_sends_the_held_parts_again(
    api: FakeRecordingsApi, tmp_path: Path, listed: object
) -> None:
    """Held parts of the old content are replaced, whatever ETag storage lists for them."""
    path = tmp_path / "visit.wav"
    path.write_bytes(os.urandom(SIZE))
    _cut_off(api, path, idempotency_key="visit-42")
    path.write_bytes(os.urandom(SIZE))
    api.listed_etag = listed  # type: ignore[assignment]
    before = sum(api.part_bytes.values())
    with _uploader(api) as uploader:
        recording = uploader.upload(path, idempotency_key="visit-42")
    assert _stored(api, recording.id) == path.read_bytes()
    assert sum(api.part_bytes.values()) - before == SIZE


@pytest.mark.parametrize(
    ("listed", "resent"),
    [
        (lambda _n, etag: etag, 1),  # confirmed: only part 3 goes
        (lambda _n, etag: f'"{etag.upper()}"', 1),
        (lambda _n, _etag: None, 3),  # nothing to confirm them by: sent again
        (lambda _n, _etag: secrets.token_hex(16), 3),
    ],
    ids=["md5", "quoted-upper", "none", "not-md5"],
)
def test_an_unchanged_file_resumes_with_only_what_is_not_confirmed(
    api: FakeRecordingsApi, tmp_path: Path, listed: object, resent: int
) -> None:
    """A resume keeps the held parts whose ETag is the MD5 of the file's bytes, no others."""
    path = tmp_path / "visit.wav"
    path.write_bytes(os.urandom(SIZE))
    state = tmp_path / "state.json"
    _cut_off(api, path, state_file=state)
    api.listed_etag = listed  # type: ignore[assignment]
    before = sum(api.part_bytes.values())
    with _uploader(api) as uploader:
        recording = uploader.upload(path, state_file=state)
    assert _stored(api, recording.id) == path.read_bytes()
    assert sum(api.part_bytes.values()) - before == resent * PART


def _assembled(api: FakeRecordingsApi) -> object:
    """The server's answer once storage assembled the parts: all held, no ETag, no URL."""

    def reply(request: httpx.Request) -> httpx.Response:
        rid = uuid.UUID(request.url.path.split("/")[-2])
        return httpx.Response(
            200,
            json={
                "recording_id": str(rid),
                "s3_key": f"recordings/{rid}",
                "bucket": "fake",
                "part_size": PART,
                "parts": [],
                "uploaded_parts": [{"part_number": n, "size": PART} for n in (1, 2, 3)],
                "expires_in": 3600,
                "max_file_size": 10**9,
            },
        )

    return reply


def test_an_assembled_upload_of_parts_this_client_sent_completes(
    api: FakeRecordingsApi, tmp_path: Path
) -> None:
    """Storage assembled what this client sent from this file (its state says so): completed."""
    path = tmp_path / "visit.wav"
    path.write_bytes(os.urandom(SIZE))
    state = tmp_path / "state.json"
    api.script(
        "POST api.test/upload/complete/{id}", lambda _r: error(409, "UPLOAD_NOT_FOUND", "later")
    )
    with _uploader(api) as uploader, pytest.raises(UploadNotFoundError):
        uploader.upload(path, state_file=state)
    saved = load_state(state)
    assert saved is not None
    assert saved.sent_parts == (1, 2, 3)
    api.script("POST api.test/upload/multipart/{id}/parts", _assembled(api), _assembled(api))  # type: ignore[arg-type]
    with _uploader(api) as uploader:
        recording = uploader.upload(path, state_file=state)
    assert recording.id == saved.recording_id
    assert _stored(api, recording.id) == path.read_bytes()


def test_an_assembled_upload_this_client_cannot_confirm_is_a_conflict(
    api: FakeRecordingsApi, tmp_path: Path
) -> None:
    """The key names an upload storage assembled from parts of unknown bytes: never completed."""
    path = tmp_path / "visit.wav"
    path.write_bytes(os.urandom(SIZE))
    _cut_off(api, path, idempotency_key="visit-42")
    path.write_bytes(os.urandom(SIZE))

    def assembled_initiate(request: httpx.Request) -> httpx.Response:
        rid = next(iter(api.recordings))
        fake = httpx.Request("POST", f"{API}/api/v1/recordings/upload/multipart/{rid}/parts")
        del request
        return _assembled(api)(fake)  # type: ignore[operator,no-any-return]

    api.script("POST api.test/upload/multipart/initiate", assembled_initiate)
    api.script("POST api.test/upload/multipart/{id}/parts", _assembled(api))  # type: ignore[arg-type]
    with _uploader(api) as uploader, pytest.raises(IdempotencyConflictError):
        uploader.upload(path, idempotency_key="visit-42")
    assert api.requests["POST api.test/upload/complete/{id}"] == 0


class Killed(BaseException):
    """The process dying at this point (nothing after it runs, as with SIGKILL)."""


def _kill(_request: httpx.Request) -> httpx.Response:
    raise Killed


def _then_kill(api: FakeRecordingsApi) -> object:
    """Let the request through to the API (it acts on it), then die before its answer is read."""

    def reply(request: httpx.Request) -> httpx.Response:
        api.handle(request)
        raise Killed

    return reply


def test_parts_confirmed_by_their_etag_count_as_sent_once_storage_assembled_them(
    api: FakeRecordingsApi, tmp_path: Path
) -> None:
    """A resume after storage assembled parts confirmed by MD5 completes the same recording."""
    path = tmp_path / "visit.wav"
    path.write_bytes(os.urandom(SIZE))
    state = tmp_path / "state.json"
    api.script("PUT part", lambda _r: None, _then_kill(api))  # type: ignore[arg-type]
    with _uploader(api, parallel=1) as uploader, pytest.raises(Killed):
        uploader.upload(path, state_file=state)
    first = load_state(state)
    assert first is not None
    assert first.sent_parts == (1,)  # part 2 is stored, but its answer never came
    api.script(
        "POST api.test/upload/complete/{id}", lambda _r: error(409, "UPLOAD_NOT_FOUND", "later")
    )
    with _uploader(api) as uploader, pytest.raises(UploadNotFoundError):
        uploader.upload(path, state_file=state)  # confirms parts 1 and 2 by MD5, sends 3
    second = load_state(state)
    assert second is not None
    assert second.sent_parts == (1, 2, 3)
    api.script("POST api.test/upload/multipart/{id}/parts", _assembled(api), _assembled(api))  # type: ignore[arg-type]
    before = sum(api.part_bytes.values())
    with _uploader(api) as uploader:
        recording = uploader.upload(path, state_file=state)
    assert recording.id == first.recording_id
    assert list(api.recordings) == [first.recording_id]
    assert sum(api.part_bytes.values()) == before
    assert _stored(api, recording.id) == path.read_bytes()


def test_a_new_upload_in_place_of_a_stale_one_keeps_none_of_its_sent_parts(
    api: FakeRecordingsApi, tmp_path: Path
) -> None:
    """The state of an upload started anew names no part of the recording it replaced."""
    path = tmp_path / "visit.wav"
    path.write_bytes(os.urandom(SIZE))
    state = tmp_path / "state.json"
    _cut_off(api, path, state_file=state)
    old = load_state(state)
    assert old is not None
    assert old.sent_parts == (1, 2)
    assert old.recording_id is not None
    del api.recordings[old.recording_id]  # purged since: the resume starts anew
    api.script("PUT part", _kill)
    with _uploader(api, parallel=1) as uploader, pytest.raises(Killed):
        uploader.upload(path, state_file=state)
    new = load_state(state)
    assert new is not None
    assert new.recording_id not in (None, old.recording_id)
    assert new.sent_parts == ()
