"""Resumable (multipart) uploads through the service, on the in-memory backends."""

from __future__ import annotations

import datetime as dt
import hashlib
import random
import uuid
from typing import Any

import pytest

from helppet_recordings import (
    InMemoryRepository,
    InMemoryStorage,
    RecordingService,
    RecordingSettings,
    RecordingStatus,
)
from helppet_recordings.errors import (
    FileTooLargeError,
    IdempotencyConflictError,
    InvalidStatusTransitionError,
    RecordingNotFoundError,
    StorageError,
    UploadIncompleteError,
    UploadKindError,
    UploadSizeMismatchError,
    UploadVerificationError,
    ValidationError,
)
from helppet_recordings.multipart import MIN_PART_SIZE, PREFERRED_PART_SIZE
from helppet_recordings.schemas import MultipartUploadResponse
from helppet_recordings.testing.clock import FakeClock
from tests.support.faults import FaultyStorage

USER = uuid.UUID("00000000-0000-4000-8000-000000000001")
OTHER = uuid.UUID("00000000-0000-4000-8000-000000000002")
SIZE = 2 * PREFERRED_PART_SIZE + 12_345
"""Three parts: two of 8 MiB and a short last one."""
AUDIO = b"RIFF\x00\x00\x00\x00WAVEfmt " + random.Random(3).randbytes(SIZE - 16)


class Env:
    """A service with multipart-capable in-memory storage and a movable clock."""

    def __init__(self) -> None:
        self.clock = FakeClock()
        self.storage = InMemoryStorage(clock=lambda: self.clock().timestamp())
        self.repository = InMemoryRepository()
        settings = RecordingSettings(
            max_file_size=64 * 1024 * 1024, s3_presigned_url_expiration=600
        )
        self.service = RecordingService(self.storage, self.repository, settings, clock=self.clock)

    def initiate(self, size: int = SIZE, **extra: Any) -> MultipartUploadResponse:
        """Start a multipart upload of a WAV file of ``size`` bytes."""
        request = {
            "filename": "visit.wav",
            "content_type": "audio/wav",
            "file_size_bytes": size,
            **extra,
        }
        return self.service.initiate_multipart_upload(USER, request)

    def send(self, answer: MultipartUploadResponse, numbers: set[int] | None = None) -> int:
        """PUT the planned bytes of the answer's parts (those in ``numbers``); return bytes sent."""
        sent = 0
        for part in answer.parts:
            if numbers is not None and part.part_number not in numbers:
                continue
            offset = (part.part_number - 1) * answer.part_size
            self.storage.receive_part(part.url, AUDIO[offset : offset + part.size])
            sent += part.size
        return sent

    def complete(self, answer: MultipartUploadResponse, size: int = SIZE) -> Any:
        """Complete the upload, declaring ``size``."""
        return self.service.complete_upload(USER, answer.recording_id, {"file_size_bytes": size})


@pytest.fixture
def env() -> Env:
    """A fresh environment."""
    return Env()


def test_initiate_plans_the_parts_and_signs_each(env: Env) -> None:
    """Every part but the last is part_size bytes; each has its own URL; nothing is held yet."""
    answer = env.initiate()
    assert answer.part_size == PREFERRED_PART_SIZE
    assert [(p.part_number, p.size) for p in answer.parts] == [
        (1, PREFERRED_PART_SIZE),
        (2, PREFERRED_PART_SIZE),
        (3, 12_345),
    ]
    assert len({p.url for p in answer.parts}) == 3
    assert answer.uploaded_parts == []
    assert answer.expires_in == 600
    recording = env.service.get_recording(USER, answer.recording_id)
    assert recording.status is RecordingStatus.UPLOADING
    assert "visit" not in answer.s3_key and all("visit" not in p.url for p in answer.parts)
    uploads = env.storage.list_multipart_uploads(prefix="")
    assert [(u.key, u.upload_id) for u in uploads] == [
        (answer.s3_key, env.repository.get(answer.recording_id).multipart_upload_id)  # type: ignore[union-attr]
    ]


def test_parts_in_any_order_complete_to_the_exact_bytes(env: Env) -> None:
    """Parts sent last-first assemble the file; the recording is uploaded with its size."""
    answer = env.initiate()
    answer = answer.model_copy(update={"parts": list(reversed(answer.parts))})
    env.send(answer)
    done = env.complete(answer)
    assert done.status is RecordingStatus.UPLOADED
    assert done.file_size_bytes == SIZE
    assert env.storage.read_range(answer.s3_key, offset=0, length=SIZE + 1) == AUDIO
    assert env.storage.head(answer.s3_key).content_type == "audio/wav"  # type: ignore[union-attr]
    assert env.storage.list_multipart_uploads(prefix="") == []
    assert env.repository.get(answer.recording_id).multipart_upload_id is None  # type: ignore[union-attr]


def test_missing_part_is_incomplete_then_resumed_with_only_that_part(env: Env) -> None:
    """UPLOAD_INCOMPLETE names the missing part; signing again offers only it."""
    answer = env.initiate()
    env.send(answer, {1, 3})
    with pytest.raises(UploadIncompleteError) as caught:
        env.complete(answer)
    assert caught.value.details["missing_parts"] == [2]
    assert caught.value.http_status == 409
    assert env.service.get_recording(USER, answer.recording_id).status is RecordingStatus.UPLOADING
    resumed = env.service.sign_upload_parts(USER, answer.recording_id)
    assert [p.part_number for p in resumed.parts] == [2]
    assert [(p.part_number, p.size) for p in resumed.uploaded_parts] == [
        (1, PREFERRED_PART_SIZE),
        (3, 12_345),
    ]
    assert env.send(resumed) == PREFERRED_PART_SIZE
    assert env.complete(resumed).status is RecordingStatus.UPLOADED
    assert env.storage.read_range(answer.s3_key, offset=0, length=SIZE) == AUDIO


def test_part_numbers_narrow_the_signed_parts(env: Env) -> None:
    """``part_numbers`` signs exactly those parts, held or not; unknown numbers are refused."""
    answer = env.initiate()
    env.send(answer, {1})
    again = env.service.sign_upload_parts(USER, answer.recording_id, part_numbers=[3, 1])
    assert [p.part_number for p in again.parts] == [1, 3]
    with pytest.raises(ValidationError):
        env.service.sign_upload_parts(USER, answer.recording_id, part_numbers=[4])
    with pytest.raises(ValidationError):
        env.service.sign_upload_parts(USER, answer.recording_id, part_numbers=[0])


def test_signing_again_moves_the_deadline(env: Env) -> None:
    """A long upload stays alive as long as the client keeps asking for part URLs."""
    answer = env.initiate()
    first = env.repository.get(answer.recording_id).upload_expires_at  # type: ignore[union-attr]
    env.clock.advance(seconds=500)
    env.service.sign_upload_parts(USER, answer.recording_id)
    later = env.repository.get(answer.recording_id).upload_expires_at  # type: ignore[union-attr]
    assert first is not None and later is not None
    assert later - first == dt.timedelta(seconds=500)


def test_a_completed_upload_takes_no_more_parts(env: Env) -> None:
    """After completion every part URL is refused: the verified bytes cannot change."""
    answer = env.initiate()
    env.send(answer)
    env.complete(answer)
    for part in answer.parts:
        with pytest.raises(StorageError) as caught:
            env.storage.receive_part(part.url, b"x" * part.size)
        assert caught.value.details["storage_error"] == "NoSuchUpload"
    assert env.storage.read_range(answer.s3_key, offset=0, length=SIZE) == AUDIO
    with pytest.raises(InvalidStatusTransitionError):
        env.service.sign_upload_parts(USER, answer.recording_id)


def test_completion_is_idempotent(env: Env) -> None:
    """Completing twice answers the same recording; a different size is a mismatch."""
    answer = env.initiate()
    env.send(answer)
    first = env.complete(answer)
    assert env.complete(answer) == first
    with pytest.raises(UploadSizeMismatchError):
        env.complete(answer, SIZE - 1)


def test_declared_size_must_match_the_plan(env: Env) -> None:
    """A completion declaring another size than the initiate is refused before assembly."""
    answer = env.initiate()
    env.send(answer)
    with pytest.raises(UploadSizeMismatchError):
        env.complete(answer, SIZE + 1)
    assert env.storage.list_multipart_uploads(prefix="") != []
    assert env.complete(answer).status is RecordingStatus.UPLOADED


def test_sizes_outside_the_limits_are_refused(env: Env) -> None:
    """Zero bytes is a validation error, over the maximum is FILE_TOO_LARGE; nothing is started."""
    with pytest.raises(ValidationError):
        env.initiate(0)
    with pytest.raises(FileTooLargeError):
        env.initiate(64 * 1024 * 1024 + 1)
    assert env.storage.list_multipart_uploads(prefix="") == []
    assert env.service.list_recordings(USER).total == 0


def test_a_small_file_is_one_part(env: Env) -> None:
    """A file below the minimum part size is one part of its exact size."""
    answer = env.initiate(1000)
    assert [(p.part_number, p.size) for p in answer.parts] == [(1, 1000)]
    assert answer.part_size == 1000
    env.storage.receive_part(answer.parts[0].url, AUDIO[:1000])
    assert env.complete(answer, 1000).file_size_bytes == 1000


def test_wrong_audio_is_refused_and_the_upload_starts_over(env: Env) -> None:
    """An assembled HTML file is refused and removed; signing again starts a fresh upload."""
    answer = env.initiate(MIN_PART_SIZE)
    html = b"<!DOCTYPE html><html>" + b" " * (MIN_PART_SIZE - 21)
    env.storage.receive_part(answer.parts[0].url, html)
    with pytest.raises(UploadVerificationError):
        env.complete(answer, MIN_PART_SIZE)
    assert env.storage.head(answer.s3_key) is None
    fresh = env.service.sign_upload_parts(USER, answer.recording_id)
    assert [p.part_number for p in fresh.parts] == [1]
    assert fresh.uploaded_parts == []
    env.storage.receive_part(fresh.parts[0].url, AUDIO[:MIN_PART_SIZE])
    assert env.complete(fresh, MIN_PART_SIZE).status is RecordingStatus.UPLOADED


class RefusingReads(InMemoryStorage):
    """Storage that refuses to read objects (a missing kms:Decrypt, an expired token) on demand."""

    refusing = False

    def read_range(self, key: str, *, offset: int, length: int) -> bytes | None:
        """Refuse while ``refusing``, as S3 answers 403 AccessDenied."""
        if self.refusing:
            raise StorageError("Storage refused the request", storage_error="AccessDenied")
        return super().read_range(key, offset=offset, length=length)


def test_storage_refusing_to_read_the_assembled_object_keeps_it(env: Env) -> None:
    """A 403 while verifying is no verdict on the audio: the object stays, a retry completes."""
    storage = RefusingReads(clock=lambda: env.clock().timestamp())
    env.storage = storage
    settings = env.service.settings
    env.service = RecordingService(storage, env.repository, settings, clock=env.clock)
    answer = env.initiate()
    env.send(answer)
    storage.refusing = True
    with pytest.raises(StorageError):
        env.complete(answer)
    assert env.storage.head(answer.s3_key) is not None
    storage.refusing = False
    assert env.complete(answer).status is RecordingStatus.UPLOADED
    assert env.storage.read_range(answer.s3_key, offset=0, length=SIZE) == AUDIO


def test_delete_aborts_the_unfinished_upload(env: Env) -> None:
    """Deleting an uploading recording aborts its multipart upload: nothing stays billed."""
    answer = env.initiate()
    env.send(answer, {1})
    env.service.delete_recording(USER, answer.recording_id)
    assert env.storage.list_multipart_uploads(prefix="") == []
    with pytest.raises(RecordingNotFoundError):
        env.service.sign_upload_parts(USER, answer.recording_id)


def test_sweeper_aborts_an_abandoned_upload_and_fails_it(env: Env) -> None:
    """Past the deadline with a part missing: failed, and its upload aborted."""
    answer = env.initiate()
    env.send(answer, {1, 2})
    env.clock.advance(seconds=10_000)
    assert env.service.expire_stale_uploads() == 1
    recording = env.service.get_recording(USER, answer.recording_id)
    assert recording.status is RecordingStatus.FAILED
    assert recording.processing_error == (
        "The upload deadline passed with 1 of 3 parts of the file missing"
    )
    assert env.storage.list_multipart_uploads(prefix="") == []


def _refused_for_its_checksum(env: Env) -> MultipartUploadResponse:
    """Send every part, then complete declaring another SHA-256: refused, object removed."""
    answer = env.initiate()
    env.send(answer)
    with pytest.raises(UploadVerificationError) as refused:
        env.service.complete_upload(
            USER,
            answer.recording_id,
            {"file_size_bytes": SIZE, "content_sha256": hashlib.sha256(b"other").hexdigest()},
        )
    assert refused.value.details["reason"] == "checksum"
    assert env.storage.head(answer.s3_key) is None
    return answer


def test_a_refused_upload_gone_stale_is_not_said_to_lack_its_file(env: Env) -> None:
    """The sweeper's reason for a refused, removed multipart file names the refusal."""
    answer = _refused_for_its_checksum(env)
    env.clock.advance(seconds=10_000)
    assert env.service.expire_stale_uploads() == 1
    recording = env.service.get_recording(USER, answer.recording_id)
    assert recording.status is RecordingStatus.FAILED
    assert recording.processing_error == (
        "The upload deadline passed without a file: storage no longer holds the multipart "
        "upload (its assembled file was refused, or the upload was aborted)"
    )


def test_a_refused_upload_signed_again_is_not_said_to_miss_some_parts(env: Env) -> None:
    """Signed again after the refusal, then abandoned: no part held, and the reason says why."""
    answer = _refused_for_its_checksum(env)
    env.service.sign_upload_parts(USER, answer.recording_id)  # a fresh, empty upload
    env.clock.advance(seconds=10_000)
    assert env.service.expire_stale_uploads() == 1
    recording = env.service.get_recording(USER, answer.recording_id)
    assert recording.processing_error == (
        "The upload deadline passed with no part of the file in storage "
        "(none arrived, or a refused file's parts were not sent again)"
    )
    assert env.storage.list_multipart_uploads(prefix="") == []


def test_sweeper_assembles_an_upload_whose_completion_never_came(env: Env) -> None:
    """Every part arrived but the client vanished: the sweeper assembles and verifies it."""
    answer = env.initiate()
    env.send(answer)
    env.clock.advance(seconds=10_000)
    assert env.service.expire_stale_uploads() == 0
    assert env.service.get_recording(USER, answer.recording_id).status is RecordingStatus.UPLOADED
    assert env.storage.read_range(answer.s3_key, offset=0, length=SIZE) == AUDIO


class AssembledMeanwhile(InMemoryStorage):
    """Storage where another party assembles the upload just before this caller does.

    The other party is the sweeper or a second completion: it assembled the
    parts between this caller's listing of them and its own assembly.
    """

    def complete_multipart_upload(self, **kwargs: Any) -> Any:
        super().complete_multipart_upload(**kwargs)  # theirs
        return super().complete_multipart_upload(**kwargs)  # ours: NoSuchUpload


@pytest.mark.parametrize("who", ["client", "sweeper"])
def test_an_upload_assembled_meanwhile_is_verified_where_it_is(env: Env, who: str) -> None:
    """A completion and the sweeper racing to assemble: the loser verifies the object, no harm."""
    env.storage = AssembledMeanwhile(clock=lambda: env.clock().timestamp())
    settings = env.service.settings
    env.service = RecordingService(env.storage, env.repository, settings, clock=env.clock)
    answer = env.initiate()
    env.send(answer)
    if who == "client":
        done = env.complete(answer)
    else:
        env.clock.advance(seconds=10_000)
        assert env.service.expire_stale_uploads() == 0
        done = env.service.get_recording(USER, answer.recording_id)
    assert done.status is RecordingStatus.UPLOADED
    assert env.storage.read_range(answer.s3_key, offset=0, length=SIZE) == AUDIO


def test_sweeper_and_reconcile_abort_uploads_no_recording_waits_for(env: Env) -> None:
    """An orphan multipart upload (its initiate died) is reported, then aborted."""
    key = "recordings/orphan/0.wav"
    env.storage.create_multipart_upload(key=key, content_type="audio/wav")
    assert env.service.reconcile().unfinished_uploads == []  # too young to judge
    env.clock.advance(seconds=10_000)
    report = env.service.reconcile()
    assert report.unfinished_uploads == [key]
    assert report.aborted_uploads == 0
    assert len(env.storage.list_multipart_uploads(prefix="")) == 1
    env.service.expire_stale_uploads()
    assert env.storage.list_multipart_uploads(prefix="") == []


def test_abort_abandoned_uploads_counts_what_it_aborts(env: Env) -> None:
    """Only uploads old enough that no live upload waits for are aborted, and counted."""
    live = env.initiate()
    env.storage.create_multipart_upload(key="recordings/orphan/2.wav", content_type="audio/wav")
    assert env.service.abort_abandoned_uploads() == 0
    env.clock.advance(seconds=10_000)
    env.service.sign_upload_parts(USER, live.recording_id)  # the live upload keeps going
    assert env.service.abort_abandoned_uploads() == 1
    assert [u.key for u in env.storage.list_multipart_uploads(prefix="")] == [live.s3_key]


def test_the_sweep_can_leave_aborting_to_one_listing_of_its_own(env: Env) -> None:
    """``abort_abandoned=False`` settles without listing uploads; the abort then lists once."""
    storage = FaultyStorage(env.storage)  # counts the calls it passes on
    service = RecordingService(storage, env.repository, env.service.settings, clock=env.clock)
    stale = env.initiate()  # its parts never come: the sweep fails it and aborts its upload
    env.storage.create_multipart_upload(key="recordings/orphan/3.wav", content_type="audio/wav")
    env.clock.advance(seconds=10_000)
    assert service.expire_stale_uploads(abort_abandoned=False) == 1
    assert storage.calls["list_multipart_uploads"] == 0
    assert service.abort_abandoned_uploads() == 1  # the orphan; the failed one went with it
    assert storage.calls["list_multipart_uploads"] == 1
    assert env.storage.list_multipart_uploads(prefix="") == []
    assert service.get_recording(USER, stale.recording_id).status.value == "failed"


def test_reconcile_with_delete_orphans_aborts_them(env: Env) -> None:
    """``delete_orphans`` aborts the abandoned uploads it reports."""
    env.storage.create_multipart_upload(key="recordings/orphan/1.wav", content_type="audio/wav")
    env.clock.advance(seconds=10_000)
    report = env.service.reconcile(delete_orphans=True)
    assert report.aborted_uploads == 1
    assert env.storage.list_multipart_uploads(prefix="") == []


def test_a_live_long_upload_is_not_an_orphan(env: Env) -> None:
    """An upload older than the deadline span whose recording still waits is left alone."""
    answer = env.initiate()
    for _ in range(5):
        env.clock.advance(seconds=500)
        env.service.sign_upload_parts(USER, answer.recording_id)
    assert env.service.reconcile(delete_orphans=True).unfinished_uploads == []
    env.service.expire_stale_uploads()
    assert len(env.storage.list_multipart_uploads(prefix="")) == 1


def test_repeated_initiate_with_the_key_answers_the_same_recording(env: Env) -> None:
    """The same idempotency key and request: same recording, URLs for the missing parts."""
    first = env.initiate(idempotency_key="visit-42")
    env.send(first, {1})
    again = env.initiate(idempotency_key="visit-42")
    assert again.recording_id == first.recording_id
    assert [p.part_number for p in again.parts] == [2, 3]
    with pytest.raises(IdempotencyConflictError):
        env.initiate(SIZE + 1, idempotency_key="visit-42")
    with pytest.raises(IdempotencyConflictError):
        env.service.initiate_upload(
            USER,
            {"filename": "visit.wav", "content_type": "audio/wav", "idempotency_key": "visit-42"},
        )
    assert len(env.storage.list_multipart_uploads(prefix="")) == 1


def test_kinds_do_not_mix(env: Env) -> None:
    """POST renewal does not apply to a multipart upload, nor part signing to a POST upload."""
    answer = env.initiate()
    with pytest.raises(UploadKindError) as caught:
        env.service.renew_upload(USER, answer.recording_id)
    assert caught.value.error_code == "WRONG_UPLOAD_KIND"
    ticket = env.service.initiate_upload(USER, {"filename": "a.wav", "content_type": "audio/wav"})
    with pytest.raises(UploadKindError):
        env.service.sign_upload_parts(USER, ticket.recording_id)


def test_other_users_cannot_sign_parts(env: Env) -> None:
    """Another user's recording is not found, as everywhere."""
    answer = env.initiate()
    with pytest.raises(RecordingNotFoundError):
        env.service.sign_upload_parts(OTHER, answer.recording_id)


def test_storage_without_multipart_is_a_clear_error() -> None:
    """A storage backend without the capability answers VALIDATION_ERROR, creating nothing."""

    class PostOnly:
        """Delegates the storage port to an InMemoryStorage, hiding multipart."""

        def __init__(self) -> None:
            self._inner = InMemoryStorage()

        def __getattr__(self, name: str) -> Any:
            if "multipart" in name or "part" in name.split("_"):
                raise AttributeError(name)
            return getattr(self._inner, name)

        @property
        def bucket(self) -> str:
            return self._inner.bucket

    repository = InMemoryRepository()
    service = RecordingService(PostOnly(), repository, RecordingSettings())
    with pytest.raises(ValidationError):
        service.initiate_multipart_upload(
            USER, {"filename": "a.wav", "content_type": "audio/wav", "file_size_bytes": 10}
        )
    assert service.list_recordings(USER).total == 0
