"""The worker's operations: claim, begin, inspect, defer, transcribe, take over, reprocess."""

from __future__ import annotations

import uuid

import pytest

from helppet_recordings import InvalidStatusTransitionError, RecordingStatus, ValidationError
from helppet_recordings.models import AudioFacts, Recording
from tests.support.uploads import upload_key
from tests.unit.conftest import Harness

USER = uuid.UUID("5f0c6c1e-0a7e-4b8e-9d5e-0c2b7b7f1a01")
BODY = b"\x00\x00\x00\x18ftypM4A " + b"a" * 500
FACTS = AudioFacts(
    format="mov,mp4,m4a", codec="aac", duration_seconds=3.2, sample_rate=44100, channels=1
)


def _stored(h: Harness, rid: uuid.UUID) -> Recording:
    """The recording as the repository holds it."""
    recording = h.repository.get(rid)
    assert recording is not None
    return recording


def _uploaded(h: Harness) -> uuid.UUID:
    ticket = h.service.initiate_upload(USER, {"filename": "a.m4a", "content_type": "audio/mp4"})
    h.put(upload_key(ticket), BODY)
    h.service.complete_upload(USER, ticket.recording_id, {"file_size_bytes": len(BODY)})
    return ticket.recording_id


def test_a_verified_upload_is_claimed_processed_and_transcribed(harness: Harness) -> None:
    """Claim, begin, record the audio and the transcript: one attempt, lease cleared."""
    rid = _uploaded(harness)
    [claimed] = harness.service.claim_for_processing(limit=5, lease_seconds=60)
    assert claimed.id == rid
    assert harness.service.claim_for_processing(limit=5) == []  # held by this worker
    started = harness.service.begin_processing(claimed)
    assert (started.status, started.processing_attempts) == (RecordingStatus.PROCESSING, 1)
    claim = claimed.lease_expires_at
    assert claim is not None
    harness.service.record_audio(rid, FACTS, claim=claim)
    done = harness.service.record_transcript(rid, text="hello", claim=claim)
    assert done.status is RecordingStatus.TRANSCRIBED
    assert done.audio is not None and done.audio.duration_seconds == 3.2
    stored = harness.repository.get(rid)
    assert stored is not None and stored.lease_expires_at is None


def test_a_transient_error_waits_then_retries_with_the_attempts_counted(harness: Harness) -> None:
    """Deferred work goes back to uploaded and is claimable only after its wait."""
    rid = _uploaded(harness)
    [claimed] = harness.service.claim_for_processing()
    harness.service.begin_processing(claimed)
    assert claimed.lease_expires_at is not None
    waiting = harness.service.defer_processing(
        rid, error="429 from the service", retry_in_seconds=30, claim=claimed.lease_expires_at
    )
    assert waiting.status is RecordingStatus.UPLOADED
    assert harness.service.claim_for_processing() == []
    harness.clock.advance(seconds=31)
    [again] = harness.service.claim_for_processing()
    assert harness.service.begin_processing(again).processing_attempts == 2


@pytest.mark.parametrize("wait", [float("inf"), float("nan"), -1, 10**12, True, "30"])
def test_a_wait_that_is_no_wait_is_refused_and_changes_nothing(
    harness: Harness, wait: object
) -> None:
    """retry_in_seconds outside 0..30 days is VALIDATION_ERROR, not an OverflowError."""
    rid = _uploaded(harness)
    [claimed] = harness.service.claim_for_processing()
    harness.service.begin_processing(claimed)
    assert claimed.lease_expires_at is not None
    with pytest.raises(ValidationError):
        harness.service.defer_processing(
            rid,
            error="429",
            retry_in_seconds=wait,  # type: ignore[arg-type]
            claim=claimed.lease_expires_at,
        )
    assert _stored(harness, rid).status is RecordingStatus.PROCESSING


@pytest.mark.parametrize("lease", [0, 10**12, 2.5])
def test_leases_outside_their_range_are_refused(harness: Harness, lease: object) -> None:
    """A lease of 0, a trillion seconds or a fraction is VALIDATION_ERROR before anything moves."""
    _uploaded(harness)
    with pytest.raises(ValidationError):
        harness.service.claim_for_processing(lease_seconds=lease)  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        harness.service.expire_stale_uploads(lease_seconds=lease)  # type: ignore[arg-type]


def test_a_dead_workers_recording_is_taken_over_and_its_late_result_dropped(
    harness: Harness,
) -> None:
    """After the lease runs out another worker takes over; the first one's writes are refused."""
    rid = _uploaded(harness)
    [first] = harness.service.claim_for_processing(lease_seconds=60)
    harness.service.begin_processing(first)
    harness.clock.advance(seconds=61)
    [second] = harness.service.claim_for_processing(lease_seconds=60)
    assert second.id == rid
    taken = harness.service.begin_processing(second)
    assert (taken.status, taken.processing_attempts) == (RecordingStatus.PROCESSING, 2)
    assert first.lease_expires_at is not None and second.lease_expires_at is not None
    with pytest.raises(InvalidStatusTransitionError) as lost:
        harness.service.record_transcript(rid, text="late", claim=first.lease_expires_at)
    assert lost.value.details["reason"] == "claim_lost"
    done = harness.service.record_transcript(rid, text="fresh", claim=second.lease_expires_at)
    assert done.transcript_text == "fresh"


def test_reprocess_needs_verified_audio(harness: Harness) -> None:
    """A failed transcription goes back to uploaded, in its next cycle; a failed upload cannot."""
    rid = _uploaded(harness)
    harness.service.mark_failed(rid, error="unsupported language")
    assert _stored(harness, rid).processing_cycle == 1
    again = harness.service.reprocess(rid)
    assert (again.status, again.processing_error) == (RecordingStatus.UPLOADED, None)
    stored = _stored(harness, rid)
    assert (stored.processing_attempts, stored.processing_cycle) == (0, 2)
    assert [r.id for r in harness.service.claim_for_processing()] == [rid]

    never = harness.service.initiate_upload(
        USER, {"filename": "b.m4a", "content_type": "audio/mp4"}
    ).recording_id
    harness.service.mark_failed(never, error="gave up")
    with pytest.raises(InvalidStatusTransitionError):
        harness.service.reprocess(never)
    with pytest.raises(InvalidStatusTransitionError):
        harness.service.complete_upload(USER, never, {"file_size_bytes": len(BODY)})
