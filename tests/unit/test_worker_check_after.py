"""The check after a paid transcription rides out a storage blip instead of discarding the result.

Once the transcriber is done, the worker asks storage (``head``) whether it
still holds the verified object before it stores the transcript. Storage
being briefly unavailable there must not throw the transcript away: the
retry would pay for the transcription again (and Amazon Transcribe's job is
already deleted). A changed object still fails the recording at once.
"""

from __future__ import annotations

import logging
import random
import time
import uuid

import attrs
import pytest

from helppet_recordings import (
    InMemoryRepository,
    InMemoryStorage,
    RecordingService,
    RecordingSettings,
    RecordingStatus,
    StorageUnavailableError,
)
from helppet_recordings.models import Recording, StoredObject
from helppet_recordings.testing.clock import FakeClock
from helppet_recordings.transcription import Transcript, TranscriptionInput, TranscriptionWorker
from helppet_recordings.transcription._verified import AFTER_CHECKS
from tests.support.audio import encode_tone

USER = uuid.UUID("5d1f3c1e-8f0a-4a53-9d0e-2b6f0c7e9a41")
TONE = encode_tone("wav", 0.5)
SECRET_TEXT = "Bella's biopsy came back benign"


class BlinkingStorage(InMemoryStorage):
    """The in-memory storage whose next ``head_outages`` heads raise ``StorageUnavailableError``."""

    def __init__(self, bucket: str) -> None:
        super().__init__(bucket)
        self.head_outages = 0
        self.heads = 0

    def head(self, key: str) -> StoredObject | None:
        """Count the head; raise while an outage lasts, else answer as the in-memory storage."""
        self.heads += 1
        if self.head_outages:
            self.head_outages -= 1
            raise StorageUnavailableError(retry_after=7)
        return super().head(key)


@attrs.define
class PaidTranscriber:
    """Counts its (paid) calls; as it answers, storage goes away ``outages`` times, or changes."""

    storage: BlinkingStorage
    key: str
    outages: int = 0
    replace_with: bytes | None = None
    calls: int = 0
    heads_before_answer: int = 0
    name: str = "paid"

    def transcribe(self, audio: TranscriptionInput) -> Transcript:
        """Answer, leaving storage unavailable (or the object replaced) for the check after."""
        del audio  # reads the object itself, as Amazon Transcribe does
        self.calls += 1
        if self.replace_with is not None:
            self.storage.put_object(self.key, self.replace_with, content_type="audio/wav")
        self.storage.head_outages = self.outages
        self.heads_before_answer = self.storage.heads
        return Transcript(SECRET_TEXT, 0.9, "en-US", service=self.name)


@attrs.define
class Scene:
    """One uploaded recording on blinking storage, and the service around it."""

    service: RecordingService
    storage: BlinkingStorage
    repository: InMemoryRepository
    clock: FakeClock
    rid: uuid.UUID
    key: str

    def get(self) -> Recording:
        """The stored recording."""
        recording = self.repository.get(self.rid)
        assert recording is not None
        return recording

    def worker(self, transcriber: PaidTranscriber) -> TranscriptionWorker:
        """A worker with seeded jitter."""
        return TranscriptionWorker(
            self.service, transcriber, retry_base_seconds=1, rng=random.Random(3)
        )


@pytest.fixture
def scene() -> Scene:
    """A service with one verified, uploaded recording."""
    clock = FakeClock()
    storage = BlinkingStorage("helppet-audio-recordings")
    repository = InMemoryRepository()
    service = RecordingService(
        storage, repository, RecordingSettings(max_file_size=1_000_000), clock=clock
    )
    ticket = service.initiate_upload(USER, {"filename": "visit.wav", "content_type": "audio/wav"})
    storage.put_object(ticket.s3_key, TONE, content_type="audio/wav")
    service.complete_upload(USER, ticket.recording_id, {"file_size_bytes": len(TONE)})
    return Scene(service, storage, repository, clock, ticket.recording_id, ticket.s3_key)


def test_a_storage_blip_after_a_paid_transcription_keeps_the_transcript(
    scene: Scene, caplog: pytest.LogCaptureFixture
) -> None:
    """Storage unavailable for all but the last check: transcribed in one attempt, paid once."""
    transcriber = PaidTranscriber(scene.storage, scene.key, outages=AFTER_CHECKS - 1)
    with caplog.at_level(logging.DEBUG, "helppet_recordings"):
        assert scene.worker(transcriber).run_once() == 1
    done = scene.get()
    assert done.status is RecordingStatus.TRANSCRIBED
    assert (done.transcript_text, done.processing_attempts) == (SECRET_TEXT, 1)
    assert transcriber.calls == 1
    assert scene.storage.heads - transcriber.heads_before_answer == AFTER_CHECKS
    blips = [r for r in caplog.records if "STORAGE_UNAVAILABLE" in r.getMessage()]
    assert len(blips) == AFTER_CHECKS - 1
    for record in caplog.records:
        assert SECRET_TEXT not in record.getMessage()
        assert scene.key not in record.getMessage()


def test_storage_down_after_a_transcription_is_asked_a_bounded_number_of_times(
    scene: Scene,
) -> None:
    """Still unavailable after the last check: the attempt ends as before (deferred), soon."""
    transcriber = PaidTranscriber(scene.storage, scene.key, outages=10 * AFTER_CHECKS)
    started = time.monotonic()
    assert scene.worker(transcriber).run_once() == 1
    assert time.monotonic() - started < 5
    assert scene.storage.heads - transcriber.heads_before_answer == AFTER_CHECKS
    waiting = scene.get()
    assert (waiting.status, waiting.transcript_text) == (RecordingStatus.UPLOADED, None)
    assert waiting.processing_error is not None
    assert waiting.processing_error.startswith("STORAGE_UNAVAILABLE")


def test_a_changed_object_after_a_blip_still_fails_the_recording(scene: Scene) -> None:
    """A blip, then storage answers with other bytes: failed object_changed, transcript dropped."""
    transcriber = PaidTranscriber(
        scene.storage, scene.key, outages=1, replace_with=TONE[:44] + bytes(len(TONE) - 44)
    )
    assert scene.worker(transcriber).run_once() == 1
    failed = scene.get()
    assert (failed.status, failed.transcript_text) == (RecordingStatus.FAILED, None)
    assert failed.processing_error is not None
    assert failed.processing_error.startswith("UPLOAD_VERIFICATION_FAILED (object_changed)")
    assert "the transcript is discarded" in failed.processing_error
    assert scene.storage.heads - transcriber.heads_before_answer == 2
