"""A worker's claim outlives its lease while the job runs: ``extend_claim`` and the heartbeat."""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from helppet_recordings import (
    InMemoryRepository,
    InMemoryStorage,
    InvalidStatusTransitionError,
    Recording,
    RecordingService,
    RecordingSettings,
    RecordingStatus,
)
from helppet_recordings.testing.clock import FakeClock
from helppet_recordings.transcription import Transcript, TranscriptionInput, TranscriptionWorker
from tests.support.audio import encode_tone

USER = uuid.UUID("7d1f3c2e-9a0b-4c5d-8e6f-102030405060")
TONE = encode_tone("wav", 0.3)


def _uploaded(service: RecordingService, storage: InMemoryStorage) -> uuid.UUID:
    ticket = service.initiate_upload(USER, {"filename": "v.wav", "content_type": "audio/wav"})
    storage.put_object(ticket.s3_key, TONE, content_type="audio/wav")
    service.complete_upload(USER, ticket.recording_id, {"file_size_bytes": len(TONE)})
    return ticket.recording_id


@pytest.fixture
def clock() -> FakeClock:
    """The service's movable clock."""
    return FakeClock()


@pytest.fixture
def parts(clock: FakeClock) -> tuple[RecordingService, InMemoryStorage]:
    """A service on the in-memory backends with the fake clock."""
    storage = InMemoryStorage()
    service = RecordingService(storage, InMemoryRepository(), RecordingSettings(), clock=clock)
    return service, storage


def test_extend_claim_moves_the_lease_and_the_new_claim_is_the_one_that_writes(
    parts: tuple[RecordingService, InMemoryStorage], clock: FakeClock
) -> None:
    """The renewed claim holds the recording; the old one no longer writes."""
    service, storage = parts
    rid = _uploaded(service, storage)
    [claimed] = service.claim_for_processing(lease_seconds=60)
    started = service.begin_processing(claimed)
    old = started.lease_expires_at
    assert old is not None
    clock.advance(seconds=20)
    new = service.extend_claim(rid, claim=old, lease_seconds=60)
    assert new == clock() + dt.timedelta(seconds=60)
    clock.advance(seconds=50)  # past the old lease, within the new one
    assert service.claim_for_processing(lease_seconds=60) == []
    with pytest.raises(InvalidStatusTransitionError) as lost:
        service.record_transcript(rid, text="x", claim=old)
    assert lost.value.details["reason"] == "claim_lost"
    done = service.record_transcript(rid, text="x", claim=new)
    assert done.status is RecordingStatus.TRANSCRIBED


def test_a_claim_is_not_renewed_once_lost_or_nearly_run_out(
    parts: tuple[RecordingService, InMemoryStorage], clock: FakeClock
) -> None:
    """Within a fifth of the lease of running out, or after another took over: claim_lost."""
    service, storage = parts
    rid = _uploaded(service, storage)
    [claimed] = service.claim_for_processing(lease_seconds=10)
    claim = service.begin_processing(claimed).lease_expires_at
    assert claim is not None
    clock.advance(seconds=8.5)
    with pytest.raises(InvalidStatusTransitionError) as close:
        service.extend_claim(rid, claim=claim, lease_seconds=10)
    assert close.value.details["reason"] == "claim_lost"
    clock.advance(seconds=2)
    [taken] = service.claim_for_processing(lease_seconds=10)  # another worker's claim
    service.begin_processing(taken)
    with pytest.raises(InvalidStatusTransitionError):
        service.extend_claim(rid, claim=claim, lease_seconds=10)


def test_a_claim_is_never_shortened(
    parts: tuple[RecordingService, InMemoryStorage], clock: FakeClock
) -> None:
    """Renewing a long claim with a short lease keeps the long one."""
    service, storage = parts
    rid = _uploaded(service, storage)
    [claimed] = service.claim_for_processing(lease_seconds=600)
    claim = service.begin_processing(claimed).lease_expires_at
    assert claim is not None
    assert service.extend_claim(rid, claim=claim, lease_seconds=10) == claim


def test_a_job_longer_than_its_lease_keeps_its_recording() -> None:
    """A 4.5 s transcription under a 3 s lease: no other worker takes it; one attempt."""
    storage = InMemoryStorage()
    repository = InMemoryRepository()
    service = RecordingService(storage, repository, RecordingSettings())
    rid = _uploaded(service, storage)
    inside = threading.Event()

    class Slow:
        """Takes longer than the lease."""

        name = "slow"

        def transcribe(self, _audio: TranscriptionInput) -> Transcript:
            inside.set()
            time.sleep(4.5)
            return Transcript("done", 0.9, "en-US", service="slow")

    worker = TranscriptionWorker(service, Slow(), lease_seconds=3, poll_interval=0.05)
    thread = threading.Thread(target=worker.run_once)
    thread.start()
    assert inside.wait(10)
    taken_over: list[object] = []
    deadline = time.monotonic() + 4
    while time.monotonic() < deadline and thread.is_alive():
        taken_over.extend(service.claim_for_processing(lease_seconds=3))
        time.sleep(0.2)
    thread.join(20)
    assert taken_over == []
    done = repository.get(rid)
    assert done is not None
    assert (done.status, done.processing_attempts) == (RecordingStatus.TRANSCRIBED, 1)


class TakeoverBeforeTheWrite(InMemoryRepository):
    """A repository where another worker acts between a write's check and the write itself."""

    meanwhile: Callable[[], None] | None = None

    def save(self, recording: Recording, **options: Any) -> bool:
        """Run the pending takeover once, then save."""
        takeover, self.meanwhile = self.meanwhile, None
        if takeover is not None:
            takeover()
        return super().save(recording, **options)


@pytest.mark.parametrize("operation", ["mark_failed", "defer_processing", "record_transcript"])
def test_a_takeover_between_the_claim_check_and_the_write_wins(
    clock: FakeClock, operation: str
) -> None:
    """A's lease ran out and B took over just before A's write: A loses, B's attempt stands."""
    storage, repository = InMemoryStorage(), TakeoverBeforeTheWrite()
    service = RecordingService(storage, repository, RecordingSettings(), clock=clock)
    rid = _uploaded(service, storage)
    [first] = service.claim_for_processing(lease_seconds=60)
    claim_a = service.begin_processing(first).lease_expires_at
    assert claim_a is not None
    clock.advance(seconds=61)
    taken: list[Recording] = []

    def worker_b() -> None:
        [second] = service.claim_for_processing(lease_seconds=60)
        taken.append(service.begin_processing(second))

    repository.meanwhile = worker_b
    writes: dict[str, Callable[[], object]] = {
        "mark_failed": lambda: service.mark_failed(rid, error="A gave up", claim=claim_a),
        "defer_processing": lambda: service.defer_processing(
            rid, error="A's transient error", retry_in_seconds=30, claim=claim_a
        ),
        "record_transcript": lambda: service.record_transcript(rid, text="A", claim=claim_a),
    }
    with pytest.raises(InvalidStatusTransitionError) as lost:
        writes[operation]()
    assert lost.value.details["reason"] == "claim_lost"
    [b] = taken
    stored = repository.get(rid)
    assert stored is not None
    assert (stored.status, stored.processing_attempts) == (RecordingStatus.PROCESSING, 2)
    done = service.record_transcript(rid, text="B", claim=b.lease_expires_at)
    assert done.transcript_text == "B"
