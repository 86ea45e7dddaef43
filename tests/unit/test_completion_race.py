"""Completions of one multipart upload that overlap: the later one answers as the first settles.

Storage forgets the upload id when a completion starts assembling its parts,
before the object is there. A second completion in that window (a retry
after a lost answer) finds neither; it waits for the first instead of
answering ``UPLOAD_NOT_FOUND``. The window is held open by a storage whose
assembly waits on an event.
"""

from __future__ import annotations

import contextlib
import hashlib
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
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
    StorageError,
    StorageUnavailableError,
    UploadNotFoundError,
    UploadTimeoutError,
    UploadVerificationError,
)
from helppet_recordings.events import UPLOAD_COMPLETED, UPLOAD_REJECTED, RecordingEvent
from helppet_recordings.models import StoredObject, StoredPart
from helppet_recordings.multipart import PREFERRED_PART_SIZE
from helppet_recordings.schemas import MultipartUploadResponse, RecordingResponse
from helppet_recordings.service.assembly import ASSEMBLY_RETRY_AFTER, ASSEMBLY_WAIT_SECONDS
from helppet_recordings.testing.clock import FakeClock

USER = uuid.UUID("00000000-0000-4000-8000-00000000c0de")
SIZE = 2 * PREFERRED_PART_SIZE + 4321
AUDIO = b"RIFF\x00\x00\x00\x00WAVEfmt " + random.Random(17).randbytes(SIZE - 16)
TIMEOUT = 10.0
"""Seconds a test waits for a thread to reach a point: a hang fails instead of blocking."""


class HeldAssembly(InMemoryStorage):
    """In-memory storage whose assembly, once it took the upload, waits for ``release``.

    (``InMemoryStorage`` itself stores the object and forgets the upload in
    one step; this one keeps the object back meanwhile, as a storage may
    whose completion forgets the upload before the object is visible.)

    ``assembling`` is set when an assembly took the upload (storage no longer
    knows its id, and the object is not written yet); ``missed`` when a
    caller then asked for the upload's parts, or to assemble it, and was told
    it does not exist (as S3 answers a completion of an upload completed
    meanwhile). The callbacks run once each, at the next listing of parts.
    """

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.assembling = threading.Event()
        self.missed = threading.Event()
        self.release = threading.Event()
        self.before_listing: list[Callable[[], object]] = []
        self.after_listing: list[Callable[[], object]] = []

    def _put_locked(self, key: str, body: bytes, *, content_type: str) -> StoredObject:
        """Keep the assembled object back (completion forgets the upload meanwhile)."""
        self._assembled = (key, body, content_type)
        return StoredObject(key=key, size=len(body), content_type=content_type)

    def list_parts(self, *, key: str, upload_id: str) -> list[StoredPart]:
        """List the parts between the next callbacks; note a NoSuchUpload."""
        if self.before_listing:
            self.before_listing.pop(0)()
        with self._noting_a_miss():
            parts = super().list_parts(key=key, upload_id=upload_id)
        if self.after_listing:
            self.after_listing.pop(0)()
        return parts

    def complete_multipart_upload(
        self, *, key: str, upload_id: str, parts: Sequence[tuple[int, str]]
    ) -> StoredObject:
        """Assemble the upload (note a NoSuchUpload); write the object only once released."""
        with self._noting_a_miss():
            super().complete_multipart_upload(key=key, upload_id=upload_id, parts=parts)
        held_key, body, content_type = self._assembled
        self.assembling.set()
        assert self.release.wait(TIMEOUT)
        return self.put_object(held_key, body, content_type=content_type)

    @contextlib.contextmanager
    def _noting_a_miss(self) -> Iterator[None]:
        try:
            yield
        except StorageError as exc:
            if exc.details.get("storage_error") == "NoSuchUpload":
                self.missed.set()
            raise


class Env:
    """A service over that storage and an in-memory repository, with its events."""

    def __init__(self) -> None:
        self.clock = FakeClock()
        self.storage = HeldAssembly(clock=lambda: self.clock().timestamp())
        self.repository = InMemoryRepository()
        self.events: list[RecordingEvent] = []
        settings = RecordingSettings(max_file_size=64 * 1024 * 1024)
        self.service = RecordingService(
            self.storage, self.repository, settings, clock=self.clock, on_event=self.events.append
        )

    def uploaded(self) -> MultipartUploadResponse:
        """Start a multipart upload and send every part."""
        answer = self.service.initiate_multipart_upload(
            USER, {"filename": "visit.wav", "content_type": "audio/wav", "file_size_bytes": SIZE}
        )
        for part in answer.parts:
            offset = (part.part_number - 1) * answer.part_size
            self.storage.receive_part(part.url, AUDIO[offset : offset + part.size])
        return answer

    def complete(self, rid: uuid.UUID, **extra: Any) -> RecordingResponse:
        """Complete the upload, declaring its size."""
        return self.service.complete_upload(USER, rid, {"file_size_bytes": SIZE, **extra})

    def named(self, name: str) -> list[RecordingEvent]:
        """The events published under ``name``."""
        return [event for event in self.events if event.name == name]


def _overlapping(
    env: Env,
    rid: uuid.UUID,
    pool: ThreadPoolExecutor,
    *,
    meanwhile: Callable[[], None],
    listed_before: bool = False,
) -> tuple[Future[RecordingResponse], Future[RecordingResponse]]:
    """Start two completions, the first's assembly held; run ``meanwhile`` once the second missed.

    The second finds the upload gone when it lists the parts, or, with
    ``listed_before``, when it asks storage to assemble the parts it listed
    just before the first took the upload.
    """
    firsts: list[Future[RecordingResponse]] = []
    if listed_before:

        def first_takes_the_upload() -> None:
            firsts.append(pool.submit(env.complete, rid))
            assert env.storage.assembling.wait(TIMEOUT)

        env.storage.after_listing.append(first_takes_the_upload)
        second = pool.submit(env.complete, rid)
    else:
        firsts.append(pool.submit(env.complete, rid))
        assert env.storage.assembling.wait(TIMEOUT)
        second = pool.submit(env.complete, rid)
    assert env.storage.missed.wait(TIMEOUT)
    meanwhile()
    return firsts[0], second


@pytest.mark.parametrize("listed_before", [False, True], ids=["listing", "assembling"])
def test_a_completion_during_anothers_assembly_answers_the_recording(listed_before: bool) -> None:
    """Both completions answer 200 with the same recording; one completion event, no rejection."""
    env = Env()
    rid = env.uploaded().recording_id
    with ThreadPoolExecutor(max_workers=2) as pool:
        first, second = _overlapping(
            env, rid, pool, meanwhile=env.storage.release.set, listed_before=listed_before
        )
        answers = [first.result(TIMEOUT), second.result(TIMEOUT)]
    assert [answer.status for answer in answers] == [RecordingStatus.UPLOADED] * 2
    assert answers[0] == answers[1]
    assert len(env.named(UPLOAD_COMPLETED)) == 1
    assert env.named(UPLOAD_REJECTED) == []
    assert env.storage.read_range(answers[0].s3_key, offset=0, length=SIZE) == AUDIO


def test_an_assembly_that_outlasts_the_wait_is_a_retryable_503() -> None:
    """Past the wait the second answers 503 (nothing refused); its retry then answers 200."""
    env = Env()
    rid = env.uploaded().recording_id

    def time_passes() -> None:
        env.clock.advance(seconds=ASSEMBLY_WAIT_SECONDS)

    with ThreadPoolExecutor(max_workers=2) as pool:
        first, second = _overlapping(env, rid, pool, meanwhile=time_passes)
        with pytest.raises(StorageUnavailableError) as waited:
            second.result(TIMEOUT)
        assert env.named(UPLOAD_REJECTED) == []
        stored = env.repository.get(rid)
        assert stored is not None
        assert stored.status is RecordingStatus.UPLOADING
        env.storage.release.set()
        done = first.result(TIMEOUT)
    assert waited.value.http_status == 503
    assert waited.value.details["reason"] == "completion_in_progress"
    assert waited.value.retry_after == ASSEMBLY_RETRY_AFTER
    assert env.complete(rid) == done
    assert len(env.named(UPLOAD_COMPLETED)) == 1


def test_a_refused_assembly_is_forgotten_so_a_retry_answers_at_once() -> None:
    """After a refused, removed object the recording forgets its upload: no wait, a clear 409."""
    env = Env()
    env.storage.release.set()
    rid = env.uploaded().recording_id
    other = hashlib.sha256(b"other").hexdigest()
    with pytest.raises(UploadVerificationError):
        env.complete(rid, content_sha256=other)
    stored = env.repository.get(rid)
    assert stored is not None
    assert (stored.status, stored.multipart_upload_id) == (RecordingStatus.UPLOADING, None)
    started = time.monotonic()
    with pytest.raises(UploadNotFoundError):
        env.complete(rid)
    assert time.monotonic() - started < 1.0
    fresh = env.service.sign_upload_parts(USER, rid)  # a new upload: every part again
    assert [part.part_number for part in fresh.parts] == [1, 2, 3]


def test_an_upload_the_sweeper_failed_and_aborted_meanwhile_answers_as_before() -> None:
    """Failed and aborted after the completion loaded it: UPLOAD_TIMEOUT at once, no rejection."""
    env = Env()
    rid = env.service.initiate_multipart_upload(
        USER, {"filename": "visit.wav", "content_type": "audio/wav", "file_size_bytes": SIZE}
    ).recording_id
    env.clock.advance(days=1)
    env.storage.before_listing.append(env.service.expire_stale_uploads)
    started = time.monotonic()
    with pytest.raises(UploadTimeoutError):
        env.complete(rid)
    assert time.monotonic() - started < 1.0
    stored = env.repository.get(rid)
    assert stored is not None
    assert stored.status is RecordingStatus.FAILED
    assert env.storage.list_multipart_uploads(prefix="") == []
    assert env.named(UPLOAD_REJECTED) == []
