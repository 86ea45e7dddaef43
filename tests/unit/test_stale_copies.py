"""Operations that lose a race: what they loaded is no longer the recording.

A completion loads the recording, then verifies what storage holds, which
takes a while; another completion, a deletion or a renewal may land in that
time. A refused verdict then must not act on the stale copy: no removal of
audio another completion verified, no rejection reported for a deleted
recording, no failing an upload that was just renewed. ``reconcile`` reads
recordings page by page while they go on changing. The interleavings are
forced by a repository that runs a callback right after a read.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from helppet_recordings import (
    InMemoryRepository,
    InMemoryStorage,
    RecordingService,
    RecordingSettings,
)
from helppet_recordings.errors import (
    RecordingNotFoundError,
    UploadNotFoundError,
    UploadVerificationError,
)
from helppet_recordings.events import RecordingEvent
from helppet_recordings.models import Recording
from helppet_recordings.multipart import PREFERRED_PART_SIZE
from helppet_recordings.schemas import MultipartUploadResponse
from helppet_recordings.status import RecordingStatus
from helppet_recordings.testing.clock import FakeClock

USER = uuid.UUID("3f1c6a2e-8d4b-4e7a-9c1f-5b2d7e8a9c01")
SIZE = 2 * PREFERRED_PART_SIZE + 12_345
AUDIO = b"RIFF\x00\x00\x00\x00WAVEfmt " + random.Random(7).randbytes(SIZE - 16)


class ActsAfterReads(InMemoryRepository):
    """An in-memory repository that runs the queued callbacks, one per read (``get``, a page)."""

    def __init__(self) -> None:
        super().__init__()
        self.after_get: list[Callable[[], object] | None] = []

    def list_by_key(self, *, prefix: str, after: str | None, limit: int) -> list[Recording]:
        """List, then run the next queued callback (as ``get`` does)."""
        page = super().list_by_key(prefix=prefix, after=after, limit=limit)
        self._meanwhile()
        return page

    def get(self, recording_id: uuid.UUID) -> Recording | None:
        """Read, then run the next queued callback (None: nothing this time)."""
        found = super().get(recording_id)
        self._meanwhile()
        return found

    def _meanwhile(self) -> None:
        if self.after_get:
            meanwhile = self.after_get.pop(0)
            if meanwhile is not None:
                meanwhile()


class World:
    """A service over that repository and in-memory storage, with a clock and its events."""

    def __init__(self) -> None:
        self.clock = FakeClock()
        self.storage = InMemoryStorage(clock=lambda: self.clock().timestamp())
        self.repository = ActsAfterReads()
        self.events: list[RecordingEvent] = []
        self.service = RecordingService(
            self.storage,
            self.repository,
            RecordingSettings(max_file_size=64 * 1024 * 1024),
            clock=self.clock,
            on_event=self.events.append,
        )

    def multipart(self) -> MultipartUploadResponse:
        """Start a resumable upload and send every part."""
        answer = self.service.initiate_multipart_upload(
            USER, {"filename": "visit.wav", "content_type": "audio/wav", "file_size_bytes": SIZE}
        )
        for part in answer.parts:
            offset = (part.part_number - 1) * answer.part_size
            self.storage.receive_part(part.url, AUDIO[offset : offset + part.size])
        return answer

    def uploaded(self) -> uuid.UUID:
        """Upload 4 KiB in one POST and complete it; return the recording's id."""
        ticket = self.service.initiate_upload(
            USER, {"filename": "visit.wav", "content_type": "audio/wav"}
        )
        self.storage.receive_upload(ticket.upload_fields, AUDIO[:4096])
        self.service.complete_upload(USER, ticket.recording_id, {"file_size_bytes": 4096})
        return ticket.recording_id

    def stored(self, rid: uuid.UUID) -> Recording:
        """The recording as stored now."""
        recording = InMemoryRepository.get(self.repository, rid)
        assert recording is not None
        return recording

    def names(self) -> list[str]:
        """The names of the events published so far."""
        return [event.name for event in self.events]


def test_a_refused_completion_keeps_audio_another_completion_verified() -> None:
    """B loaded the upload; A completed it; B's refused checksum must not remove A's audio."""
    world = World()
    rid = world.multipart().recording_id
    request: dict[str, Any] = {"file_size_bytes": SIZE}
    world.repository.after_get.append(lambda: world.service.complete_upload(USER, rid, request))
    wrong_md5 = hashlib.md5(b"other audio").hexdigest()  # noqa: S324 - the upload's checksum
    answer = world.service.complete_upload(
        USER, rid, {"file_size_bytes": SIZE, "content_md5": wrong_md5}
    )
    assert answer.status is RecordingStatus.UPLOADED  # answered as the repeat it now is
    stored = world.stored(rid)
    assert stored.verified_at is not None
    assert world.storage.head(stored.s3_key) is not None
    assert "upload.rejected" not in world.names()
    assert world.service.get_download_url(USER, rid).download_url


def test_a_completion_racing_a_deletion_answers_not_found() -> None:
    """The recording was deleted while the completion verified: no rejection is reported."""
    world = World()
    rid = world.multipart().recording_id
    world.repository.after_get.append(lambda: world.service.delete_recording(USER, rid))
    with pytest.raises(RecordingNotFoundError):
        world.service.complete_upload(USER, rid, {"file_size_bytes": SIZE})
    assert world.names()[-1] == "recording.deleted"
    assert "upload.rejected" not in world.names()


@pytest.mark.parametrize("renewed_after", ["the load", "the second look"])
def test_a_late_completion_does_not_fail_an_upload_renewed_meanwhile(renewed_after: str) -> None:
    """Past its deadline, renewed while the completion looked: it stays uploading."""
    world = World()
    ticket = world.service.initiate_upload(
        USER, {"filename": "visit.wav", "content_type": "audio/wav"}
    )
    rid = ticket.recording_id
    world.clock.advance(seconds=10_000)  # past the deadline, nothing uploaded yet
    renewals: list[Any] = []

    def renew() -> None:
        renewals.append(world.service.renew_upload(USER, rid))

    # Reads: the completion's load, then its second look after the refusal.
    world.repository.after_get.extend(
        [renew, None] if renewed_after == "the load" else [None, renew]
    )
    with pytest.raises(UploadNotFoundError):
        world.service.complete_upload(USER, rid, {"file_size_bytes": 1000})
    stored = world.stored(rid)
    assert stored.status is RecordingStatus.UPLOADING
    assert stored.upload_expires_at is not None
    assert stored.upload_expires_at > world.clock()
    assert "upload.expired" not in world.names()
    world.storage.receive_upload(renewals[0].upload_fields, AUDIO[:1000])
    completed = world.service.complete_upload(USER, rid, {"file_size_bytes": 1000})
    assert completed.status is RecordingStatus.UPLOADED


def test_reconcile_does_not_report_a_recording_purged_during_the_walk() -> None:
    """Deleted and purged after its page was read: its object is gone by design, not missing."""
    world = World()
    rid = world.uploaded()

    def delete_and_purge() -> None:
        world.service.delete_recording(USER, rid)
        world.service.purge_deleted(retention_days=0, now=world.clock() + dt.timedelta(seconds=1))

    world.repository.after_get.append(delete_and_purge)  # after the walk's first page
    report = world.service.reconcile()
    assert world.stored(rid).purged_at is not None
    assert report.missing_objects == []


def test_reconcile_still_reports_a_live_recording_without_its_object() -> None:
    """The second look confirms a real loss."""
    world = World()
    rid = world.uploaded()
    world.storage.delete(world.stored(rid).s3_key)
    assert world.service.reconcile().missing_objects == [rid]


def test_two_renewals_that_restart_a_lost_upload_agree_on_one() -> None:
    """Both find the multipart upload gone; one new upload is kept and both answers name it."""
    world = World()
    answer = world.multipart()
    rid = answer.recording_id
    key, lost = world.stored(rid).s3_key, world.stored(rid).multipart_upload_id
    assert lost is not None
    world.storage.abort_multipart_upload(key=key, upload_id=lost)
    answers: list[MultipartUploadResponse] = []
    world.repository.after_get.append(
        lambda: answers.append(world.service.sign_upload_parts(USER, rid))
    )
    answers.append(world.service.sign_upload_parts(USER, rid))
    first, second = answers
    kept = world.stored(rid).multipart_upload_id
    assert kept not in (None, lost)
    assert [upload.upload_id for upload in world.storage.list_multipart_uploads(prefix=key)] == [
        kept
    ]
    for answered in (first, second):
        assert all(str(kept) in part.url for part in answered.parts)
    for part in first.parts:  # the client that got the first answer sends every part
        offset = (part.part_number - 1) * first.part_size
        world.storage.receive_part(part.url, AUDIO[offset : offset + part.size])
    completed = world.service.complete_upload(USER, rid, {"file_size_bytes": SIZE})
    assert completed.status is RecordingStatus.UPLOADED


def test_a_renewal_meanwhile_leaves_the_verdict_standing() -> None:
    """Only the deadline moved: the refusal is answered as it is, after one verification."""
    world = World()
    rid = world.multipart().recording_id

    def nudge_the_deadline() -> None:
        stored = world.stored(rid)
        assert stored.upload_expires_at is not None
        later = stored.copy(upload_expires_at=stored.upload_expires_at + dt.timedelta(seconds=1))
        assert InMemoryRepository.save(
            world.repository, later, expected_status=stored.status, previous=stored
        )

    world.repository.after_get.extend([nudge_the_deadline] * 20)
    wrong_md5 = hashlib.md5(b"other audio").hexdigest()  # noqa: S324 - the upload's checksum
    with pytest.raises(UploadVerificationError) as refused:
        world.service.complete_upload(
            USER, rid, {"file_size_bytes": SIZE, "content_md5": wrong_md5}
        )
    assert refused.value.error_code == "UPLOAD_VERIFICATION_FAILED"
    assert world.names().count("upload.rejected") == 1
    assert world.stored(rid).status is RecordingStatus.UPLOADING
