"""RecordingUploader against a twin of the API and storage over ``httpx.MockTransport``."""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import uuid
from pathlib import Path

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from helppet_recordings.client import RecordingUploader, RetryPolicy, load_state
from helppet_recordings.client._files import FileIdentity
from helppet_recordings.client._state import UploadState, save_state
from helppet_recordings.errors import (
    RecordingError,
    StorageError,
    UnsupportedContentTypeError,
    ValidationError,
)
from tests.support.fake_recordings_api import (
    API,
    TOKEN,
    FakeRecordingsApi,
    error,
    s3_error,
)

MiB = 1024 * 1024
PART = 8 * MiB


pytestmark = pytest.mark.usefixtures("no_stamina_waits")


def _file(tmp_path: Path, size: int, name: str = "visit.wav") -> Path:
    path = tmp_path / name
    path.write_bytes(os.urandom(size))
    return path


def _uploader(api: FakeRecordingsApi, **options: object) -> RecordingUploader:
    return RecordingUploader(API, token=TOKEN, transport=api.transport, **options)  # type: ignore[arg-type]


class Progress:
    """Records every progress report, checking it is monotone and from any thread."""

    def __init__(self) -> None:
        self.reports: list[tuple[int, int]] = []
        self._lock = threading.Lock()

    def __call__(self, sent: int, total: int) -> None:
        with self._lock:
            self.reports.append((sent, total))

    def monotone(self) -> bool:
        sent = [report[0] for report in self.reports]
        return sent == sorted(sent) and len(set(sent)) == len(sent)


def _stored(api: FakeRecordingsApi, rid: uuid.UUID) -> bytes:
    stored = api.recordings[rid].stored
    assert stored is not None
    return stored


def test_small_file_goes_in_one_post_with_its_sha256(
    api: FakeRecordingsApi, tmp_path: Path
) -> None:
    """Below the threshold: initiate (SHA-256 declared), one form POST, complete."""
    path = _file(tmp_path, 300_000)
    progress = Progress()
    with _uploader(api) as uploader:
        recording = uploader.upload(path, duration_seconds=2.5, progress=progress)
    assert recording.status == "uploaded"
    assert recording.file_size_bytes == 300_000
    assert _stored(api, recording.id) == path.read_bytes()
    assert (
        api.recordings[recording.id].content_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    )
    assert api.requests["POST form"] == 1
    assert api.requests["PUT part"] == 0
    assert progress.monotone()
    assert progress.reports[0] == (0, 300_000)
    assert progress.reports[-1] == (300_000, 300_000)


def test_large_file_goes_in_parallel_parts(api: FakeRecordingsApi, tmp_path: Path) -> None:
    """At the threshold and above: every part once, in parallel, assembled to the same bytes."""
    path = _file(tmp_path, 2 * PART + 123_456)
    progress = Progress()
    with _uploader(api, parallel=3) as uploader:
        recording = uploader.upload(path, progress=progress)
    assert _stored(api, recording.id) == path.read_bytes()
    assert dict(api.part_bytes) == {1: PART, 2: PART, 3: 123_456}
    assert api.requests["POST form"] == 0
    assert progress.monotone()
    assert progress.reports[-1] == (path.stat().st_size,) * 2


def test_parts_survive_503s_retry_after_and_dropped_connections(
    api: FakeRecordingsApi, tmp_path: Path
) -> None:
    """503 (with Retry-After), 429, 500 and connection errors on parts and API are retried."""
    path = _file(tmp_path, PART + 1000)

    def drop(_request: httpx.Request) -> httpx.Response:
        raise httpx.RemoteProtocolError("peer closed connection")

    api.script(
        "PUT part",
        lambda _r: s3_error(503, "SlowDown", "slow down"),
        drop,
        lambda _r: httpx.Response(429, headers={"Retry-After": "1"}),
    )
    api.script(
        "POST api.test/upload/multipart/initiate",
        lambda _r: error(503, "DATABASE_UNAVAILABLE", retry_after=1),
    )
    api.script("POST api.test/upload/complete/{id}", lambda _r: httpx.Response(500), drop)
    with _uploader(api) as uploader:
        recording = uploader.upload(path)
    assert _stored(api, recording.id) == path.read_bytes()
    assert api.requests["PUT part"] == 5
    assert api.requests["POST api.test/upload/complete/{id}"] == 3


def test_expired_part_url_is_signed_again(api: FakeRecordingsApi, tmp_path: Path) -> None:
    """A part refused as expired (403 AccessDenied) gets a fresh URL and goes through."""
    path = _file(tmp_path, PART + 10)
    api.script("PUT part", lambda _r: s3_error(403, "AccessDenied", "Request has expired"))
    with _uploader(api, parallel=1) as uploader:
        recording = uploader.upload(path)
    assert _stored(api, recording.id) == path.read_bytes()
    assert api.requests["POST api.test/upload/multipart/{id}/parts"] == 1
    assert api.requests["PUT part"] == 3


def test_a_part_storage_holds_is_not_sent_again_when_its_url_is_renewed(
    api: FakeRecordingsApi, tmp_path: Path
) -> None:
    """Storage kept a part whose answer the client never saw: the renewal says so, no resend."""
    path = _file(tmp_path, PART + 10)

    def stored_but_refused(request: httpx.Request) -> httpx.Response:
        api._receive_part(request)  # storage keeps the bytes...
        return s3_error(403, "AccessDenied", "Request has expired")  # ...the client hears this

    api.script("PUT part", stored_but_refused)
    with _uploader(api, parallel=1) as uploader:
        recording = uploader.upload(path)
    assert _stored(api, recording.id) == path.read_bytes()
    assert api.requests["POST api.test/upload/multipart/{id}/parts"] == 1
    assert api.requests["PUT part"] == 2  # part 1 once (stored, answer lost), part 2 once


def test_expired_ticket_is_renewed(api: FakeRecordingsApi, tmp_path: Path) -> None:
    """A form refused because the ticket expired is sent again under a renewed ticket."""
    path = _file(tmp_path, 5000)

    def expire(_request: httpx.Request) -> None:
        api.now += 7200  # the ticket's hour is over: storage refuses the form

    api.script("POST form", expire)
    with _uploader(api) as uploader:
        recording = uploader.upload(path)
    assert _stored(api, recording.id) == path.read_bytes()
    assert api.requests["POST api.test/upload/renew/{id}"] == 1
    assert api.requests["POST form"] == 2


def test_a_url_refused_again_after_renewals_is_raised(
    api: FakeRecordingsApi, tmp_path: Path
) -> None:
    """Renewal is not endless: a URL refused after three fresh ones raises StorageError."""
    path = _file(tmp_path, 5000)
    api.script("POST form", *[lambda _r: s3_error(403, "AccessDenied", "denied")] * 4)
    with _uploader(api) as uploader, pytest.raises(StorageError) as caught:
        uploader.upload(path)
    assert caught.value.details["storage_error"] == "AccessDenied"
    assert api.requests["POST api.test/upload/renew/{id}"] == 3


def test_completion_reporting_missing_parts_sends_them(
    api: FakeRecordingsApi, tmp_path: Path
) -> None:
    """UPLOAD_INCOMPLETE: the missing parts are signed, sent again, and completion retried."""
    path = _file(tmp_path, 2 * PART)
    api.script(
        "POST api.test/upload/complete/{id}",
        lambda _r: error(409, "UPLOAD_INCOMPLETE", missing_parts=[2]),
    )
    with _uploader(api) as uploader:
        recording = uploader.upload(path)
    assert recording.status == "uploaded"
    assert dict(api.part_bytes) == {1: PART, 2: 2 * PART}


def test_api_refusals_raise_the_package_error(api: FakeRecordingsApi, tmp_path: Path) -> None:
    """A 4xx from the API is raised at once as its errors.py class, never retried."""
    path = _file(tmp_path, 5000)
    api.script(
        "POST api.test/upload/initiate",
        lambda _r: error(415, "UNSUPPORTED_CONTENT_TYPE", "not audio", content_type="audio/wav"),
    )
    with _uploader(api) as uploader, pytest.raises(UnsupportedContentTypeError) as caught:
        uploader.upload(path)
    assert caught.value.details == {"content_type": "audio/wav"}
    assert api.requests["POST api.test/upload/initiate"] == 1


def test_bad_token_is_raised_with_the_servers_code(api: FakeRecordingsApi, tmp_path: Path) -> None:
    """A refused token raises a RecordingError carrying UNAUTHORIZED; the provider was asked."""
    path = _file(tmp_path, 5000)
    asked: list[int] = []

    def token() -> str:
        asked.append(1)
        return "stale"

    uploader = RecordingUploader(API, token=token, transport=api.transport)
    with uploader, pytest.raises(RecordingError) as caught:
        uploader.upload(path)
    assert (caught.value.error_code, caught.value.http_status) == ("UNAUTHORIZED", 401)
    assert asked == [1]


def test_unknown_extension_is_refused_before_any_request(
    api: FakeRecordingsApi, tmp_path: Path
) -> None:
    """Without content_type, a file whose extension is no audio type is refused locally."""
    path = _file(tmp_path, 10, name="notes.txt")
    with _uploader(api) as uploader, pytest.raises(UnsupportedContentTypeError):
        uploader.upload(path)
    assert sum(api.requests.values()) == 0


def test_resume_sends_only_the_missing_parts(api: FakeRecordingsApi, tmp_path: Path) -> None:
    """A run that died after two parts resumes from its state file: only part 3 is sent."""
    path = _file(tmp_path, 3 * PART)
    state = tmp_path / "visit.wav.upload-state.json"
    api.script("PUT part", lambda r: None, lambda r: None, lambda _r: s3_error(400, "Broken", "x"))
    with _uploader(api, parallel=1) as uploader, pytest.raises(StorageError):
        uploader.upload(path, state_file=state)
    saved = load_state(state)
    assert saved is not None
    assert saved.recording_id is not None
    assert (saved.kind, saved.part_size, saved.sent_parts) == ("multipart", PART, (1, 2))
    sent_before = sum(api.part_bytes.values())

    progress = Progress()
    with _uploader(api) as uploader:
        recording = uploader.upload(path, state_file=state, progress=progress)
    assert recording.id == saved.recording_id
    assert sum(api.part_bytes.values()) - sent_before == PART
    assert progress.reports[0] == (2 * PART, 3 * PART)
    assert progress.reports[-1] == (3 * PART, 3 * PART)
    assert not state.exists()
    assert _stored(api, recording.id) == path.read_bytes()


def test_resume_after_completion_returns_the_recording(
    api: FakeRecordingsApi, tmp_path: Path
) -> None:
    """A state file left by a run that completed (then died) settles with completion alone."""
    path = _file(tmp_path, PART)
    state = tmp_path / "state.json"
    with _uploader(api) as uploader:
        first = uploader.upload(path, state_file=state)
    identity = FileIdentity.of(path)
    left = UploadState.start(identity, kind="multipart", idempotency_key="k-1")
    save_state(state, left.model_copy(update={"recording_id": first.id, "part_size": PART}))
    with _uploader(api) as uploader:
        again = uploader.upload(path, state_file=state)
    assert again.id == first.id
    assert api.part_bytes[1] == PART


def test_state_for_another_file_is_ignored_with_a_warning(
    api: FakeRecordingsApi, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A state file whose identity differs starts a new upload; the log names no file."""
    other = _file(tmp_path, 4000, name="other-visit.wav")
    path = _file(tmp_path, 5000, name="secret-name.wav")
    state = tmp_path / "state.json"
    stale = UploadState.start(FileIdentity.of(other), kind="post", idempotency_key="k-other")
    save_state(state, stale.model_copy(update={"recording_id": uuid.uuid4()}))
    with caplog.at_level(logging.WARNING, "helppet_recordings"), _uploader(api) as uploader:
        recording = uploader.upload(path, state_file=state)
    assert _stored(api, recording.id) == path.read_bytes()
    assert "another file" in caplog.text
    assert "secret-name" not in caplog.text
    assert str(tmp_path) not in caplog.text


@given(
    key=st.from_regex(r"[A-Za-z0-9._:-]{1,128}", fullmatch=True),
    size=st.integers(min_value=0, max_value=2**40),
    mtime=st.integers(min_value=0, max_value=2**62),
    digest=st.binary(min_size=32, max_size=32),
    kind=st.sampled_from(["post", "multipart"]),
    rid=st.none() | st.uuids(),
    part_size=st.none() | st.integers(min_value=1, max_value=5 * 1024**3),
    sent=st.lists(st.integers(min_value=1, max_value=10_000), unique=True, max_size=50),
)
def test_state_file_round_trips(
    tmp_path_factory: pytest.TempPathFactory,
    key: str,
    size: int,
    mtime: int,
    digest: bytes,
    kind: str,
    rid: uuid.UUID | None,
    part_size: int | None,
    sent: list[int],
) -> None:
    """Whatever a state holds, saving and loading it gives it back, and it matches its file."""
    identity = FileIdentity(size=size, mtime_ns=mtime, sha256=digest.hex())
    request = hashlib.sha256(digest).hexdigest()
    state = UploadState.start(
        identity,
        kind=kind,  # type: ignore[arg-type]
        idempotency_key=key,
        request_sha256=request,
    ).model_copy(
        update={"recording_id": rid, "part_size": part_size, "sent_parts": tuple(sorted(sent))}
    )
    path = tmp_path_factory.mktemp("state") / "s.json"
    save_state(path, state)
    loaded = load_state(path)
    assert loaded == state
    assert loaded is not None
    assert loaded.matches(identity, request)
    other = FileIdentity(size=size + 1, mtime_ns=mtime, sha256=digest.hex())
    assert not loaded.matches(other, request)
    assert not loaded.matches(identity, "0" * 64)  # another request for the same file
    assert [p.name for p in path.parent.iterdir()] == ["s.json"]


def test_unreadable_state_is_no_state(tmp_path: Path) -> None:
    """A truncated or foreign state file reads as none."""
    path = tmp_path / "s.json"
    path.write_text('{"version": 1, "idempotency_key"')
    assert load_state(path) is None
    assert load_state(tmp_path / "missing.json") is None


def test_retry_policy_attempts_bound_the_retries(api: FakeRecordingsApi, tmp_path: Path) -> None:
    """With attempts=2 a route failing three times raises the API's 503 error."""
    path = _file(tmp_path, 5000)
    api.script("POST api.test/upload/initiate", *[lambda _r: error(503, "STORAGE_UNAVAILABLE")] * 3)
    with (
        _uploader(api, retry=RetryPolicy(attempts=2)) as uploader,
        pytest.raises(RecordingError) as caught,
    ):
        uploader.upload(path)
    assert caught.value.error_code == "STORAGE_UNAVAILABLE"
    assert api.requests["POST api.test/upload/initiate"] == 2


def test_storage_without_parts_falls_back_to_one_post(
    api: FakeRecordingsApi, tmp_path: Path
) -> None:
    """A server whose storage takes no parts (VALIDATION_ERROR naming it) gets one POST."""
    path = _file(tmp_path, PART + 5)
    api.script(
        "POST api.test/upload/multipart/initiate",
        lambda _r: error(422, "VALIDATION_ERROR", "no parts here", storage="LocalStorage"),
    )
    with _uploader(api) as uploader:
        recording = uploader.upload(path)
    assert _stored(api, recording.id) == path.read_bytes()
    assert (api.requests["POST form"], api.requests["PUT part"]) == (1, 0)


@pytest.mark.parametrize(
    "refusal",
    [
        error(409, "INVALID_STATUS_TRANSITION", "failed", current_status="failed"),
        error(409, "IDEMPOTENCY_CONFLICT", "the key names another request"),
    ],
    ids=["failed", "deleted"],
)
def test_a_resumed_upload_whose_recording_cannot_go_on_starts_anew(
    api: FakeRecordingsApi, tmp_path: Path, refusal: httpx.Response
) -> None:
    """A recording that failed (or was deleted) since the last run: a new upload, state cleared."""
    path = _file(tmp_path, 5000)
    state = tmp_path / "state.json"
    api.script("POST form", lambda _r: s3_error(400, "Broken", "x"))
    with _uploader(api) as uploader, pytest.raises(StorageError):
        uploader.upload(path, state_file=state)
    saved = load_state(state)
    assert saved is not None
    assert saved.recording_id is not None
    if "INVALID" in refusal.text:  # completion is asked twice (it is idempotent) before giving up
        api.script("POST api.test/upload/complete/{id}", lambda _r: refusal, lambda _r: refusal)
    else:  # the saved key's initiate
        api.script("POST api.test/upload/initiate", lambda _r: refusal)
    with _uploader(api) as uploader:
        recording = uploader.upload(path, state_file=state)
    assert recording.id != saved.recording_id
    assert _stored(api, recording.id) == path.read_bytes()
    assert not state.exists()


def test_a_resumed_upload_asked_for_another_appointment_starts_anew(
    api: FakeRecordingsApi, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A state written for appointment A never files this run's audio (for B) under A."""
    path = _file(tmp_path, 3 * PART)
    state = tmp_path / "state.json"
    first, second = uuid.uuid4(), uuid.uuid4()
    api.script("PUT part", lambda _r: s3_error(400, "Broken", "x"))
    with _uploader(api, parallel=1) as uploader, pytest.raises(StorageError):
        uploader.upload(path, state_file=state, appointment_id=first)
    saved = load_state(state)
    assert saved is not None
    assert saved.recording_id is not None
    with caplog.at_level(logging.WARNING, "helppet_recordings"), _uploader(api) as uploader:
        recording = uploader.upload(path, state_file=state, appointment_id=second)
    assert recording.id != saved.recording_id
    assert api.requests["POST api.test/upload/multipart/initiate"] == 2
    assert "another file or upload" in caplog.text
    assert str(second) not in caplog.text


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"idempotency_key": "visit 42"}, "idempotency_key"),
        ({"duration_seconds": -1.0}, "duration_seconds"),
        ({"metadata": {"note": "x" * 100_000}}, "recording_metadata"),
        ({"recording_type": "podcast"}, "recording_type"),
    ],
)
def test_bad_arguments_are_refused_before_anything_is_sent(
    api: FakeRecordingsApi, tmp_path: Path, options: dict[str, object], field: str
) -> None:
    """VALIDATION_ERROR naming the field, no request sent and no state file written."""
    state = tmp_path / "state.json"
    for size in (5000, 3 * PART):  # one POST, and parts
        with _uploader(api) as uploader, pytest.raises(ValidationError) as caught:
            uploader.upload(_file(tmp_path, size), state_file=state, **options)  # type: ignore[arg-type]
        assert field in caught.value.details["errors"][0]["field"]
    assert sum(api.requests.values()) == 0
    assert not state.exists()


def test_an_empty_file_is_refused_before_anything_is_sent(
    api: FakeRecordingsApi, tmp_path: Path
) -> None:
    """A 0-byte file holds no audio: VALIDATION_ERROR, no recording left uploading."""
    with _uploader(api) as uploader, pytest.raises(ValidationError) as caught:
        uploader.upload(_file(tmp_path, 0))
    assert caught.value.details["errors"][0]["field"] == "path"
    assert sum(api.requests.values()) == 0
