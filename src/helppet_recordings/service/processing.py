"""What workers do after an upload: claim it, inspect it, record its transcript, or fail it.

The transcription worker (``helppet_recordings.transcription``) drives these;
a host with its own worker calls them through ``RecordingService``.

A worker's claim is the ``lease_expires_at`` it was given: operations passed
``claim=`` refuse to write once another worker has taken the recording over
(``INVALID_STATUS_TRANSITION`` with ``details["reason"] == "claim_lost"``), so
a worker that outlived its lease cannot overwrite the newer attempt.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Final

from helppet_recordings import events
from helppet_recordings.errors import InvalidStatusTransitionError
from helppet_recordings.models import AudioFacts, Recording
from helppet_recordings.schemas import RecordingResponse
from helppet_recordings.service import inputs
from helppet_recordings.service.changes import Change, ServiceContext, Step
from helppet_recordings.status import RecordingStatus

CLAIM_RENEWAL_MARGIN: Final = dt.timedelta(seconds=5)
"""A claim closer than this (or than a fifth of the lease asked for) to running out is not
renewed: another worker may be taking it over. Renew well before, a third of the lease in."""

__all__ = [
    "CLAIM_RENEWAL_MARGIN",
    "begin_processing",
    "claim_for_processing",
    "defer_processing",
    "extend_claim",
    "mark_failed",
    "record_audio",
    "record_transcript",
    "reprocess",
    "start_processing",
]


def start_processing(ctx: ServiceContext, recording_id: uuid.UUID | str) -> RecordingResponse:
    """Move ``uploaded`` -> ``processing``: a host's own worker took the recording."""

    def start(recording: Recording, now: dt.datetime) -> Change:
        return Change(recording.start_processing(now), events.PROCESSING_STARTED)

    return _respond(ctx, recording_id, start)


def claim_for_processing(ctx: ServiceContext, *, limit: int, lease_seconds: int) -> list[Recording]:
    """Claim up to ``limit`` recordings ready for a worker, each for ``lease_seconds``."""
    inputs.check_positive(limit, "limit")
    inputs.check_lease(lease_seconds, "lease_seconds")
    now = ctx.now()
    return ctx.repository.claim_work(
        now=now, limit=limit, lease_until=now + dt.timedelta(seconds=lease_seconds)
    )


def extend_claim(
    ctx: ServiceContext,
    recording_id: uuid.UUID | str,
    *,
    claim: dt.datetime,
    lease_seconds: int,
) -> dt.datetime:
    """Renew a worker's claim on a ``processing`` recording; return the new claim.

    Refused (``claim_lost``) when the claim no longer holds the recording, or
    runs out within :data:`CLAIM_RENEWAL_MARGIN` or a fifth of
    ``lease_seconds`` (another worker may be taking it over right now). A
    claim is never shortened.
    """
    rid = inputs.recording_id(recording_id)
    inputs.check_lease(lease_seconds, "lease_seconds")

    def extend(recording: Recording, now: dt.datetime) -> Change:
        _check_claim(recording, claim, RecordingStatus.PROCESSING)
        if claim - now < min(CLAIM_RENEWAL_MARGIN, dt.timedelta(seconds=lease_seconds / 5)):
            raise _claim_lost(recording)
        until = max(claim, now + dt.timedelta(seconds=lease_seconds))
        return Change(recording.extend_lease(lease_until=until), None)

    renewed = ctx.change(rid, extend, write=ctx.claimed(claim)).recording.lease_expires_at
    return claim if renewed is None else renewed


def begin_processing(ctx: ServiceContext, claimed: Recording) -> Recording:
    """Start (or take over) processing a claimed recording; the attempt is counted."""
    lease = claimed.lease_expires_at
    if lease is None:
        raise _claim_lost(claimed)

    def begin(recording: Recording, now: dt.datetime) -> Change:
        _check_claim(recording, lease, RecordingStatus.UPLOADED, RecordingStatus.PROCESSING)
        if recording.status is RecordingStatus.PROCESSING:
            started = recording.resume_processing(now, lease_until=lease)
        else:
            started = recording.start_processing(now, lease_until=lease)
        return Change(
            started,
            events.PROCESSING_STARTED,
            {
                "attempt": started.processing_attempts,
                "resumed": recording.status.value != "uploaded",
            },
        )

    return ctx.change(claimed.id, begin, loaded=claimed, write=ctx.claimed(lease)).recording


def record_audio(
    ctx: ServiceContext, recording_id: uuid.UUID | str, facts: AudioFacts, *, claim: dt.datetime
) -> Recording:
    """Keep what decoding measured on a recording this worker is processing."""

    def inspected(recording: Recording, now: dt.datetime) -> Change:
        _check_claim(recording, claim, RecordingStatus.PROCESSING)
        return Change(
            recording.record_audio(now, facts),
            events.AUDIO_INSPECTED,
            {
                "format": facts.format,
                "codec": facts.codec,
                "duration_seconds": facts.duration_seconds,
                "sample_rate": facts.sample_rate,
                "channels": facts.channels,
            },
        )

    rid = inputs.recording_id(recording_id)
    return ctx.change(rid, inspected, write=ctx.claimed(claim)).recording


def defer_processing(
    ctx: ServiceContext,
    recording_id: uuid.UUID | str,
    *,
    error: str,
    retry_in_seconds: float,
    claim: dt.datetime,
) -> Recording:
    """After a transient error: ``processing`` -> ``uploaded``, ready again after the wait."""
    reason = inputs.error_text(error)
    wait = inputs.check_wait(retry_in_seconds, "retry_in_seconds")

    def defer(recording: Recording, now: dt.datetime) -> Change:
        _check_claim(recording, claim, RecordingStatus.PROCESSING)
        waiting = recording.retry_later(
            now, reason=reason, not_before=now + dt.timedelta(seconds=wait)
        )
        return Change(
            waiting,
            events.PROCESSING_DEFERRED,
            {"attempt": recording.processing_attempts, "retry_in_seconds": wait},
        )

    rid = inputs.recording_id(recording_id)
    return ctx.change(rid, defer, write=ctx.claimed(claim)).recording


def record_transcript(
    ctx: ServiceContext,
    recording_id: uuid.UUID | str,
    *,
    text: str,
    confidence: float | None,
    language: str | None,
    service: str | None,
    claim: dt.datetime | None = None,
) -> RecordingResponse:
    """Store a transcript: ``processing`` -> ``transcribed``."""
    rid = inputs.recording_id(recording_id)
    text, confidence, language, service = inputs.transcript_fields(
        text, confidence, language, service
    )

    def record(recording: Recording, now: dt.datetime) -> Change:
        if claim is not None:
            _check_claim(recording, claim, RecordingStatus.PROCESSING)
        transcribed = recording.record_transcript(
            now, text=text, confidence=confidence, language=language, service=service
        )
        return Change(
            transcribed,
            events.TRANSCRIPT_RECORDED,
            {
                "service": service,
                "language": language,
                "confidence": confidence,
                "characters": len(text),
                "processing_seconds": _processing_seconds(recording, now),
            },
        )

    return _respond(ctx, rid, record, claim=claim)


def mark_failed(
    ctx: ServiceContext,
    recording_id: uuid.UUID | str,
    *,
    error: str,
    claim: dt.datetime | None = None,
) -> RecordingResponse:
    """Move any status that is not final to ``failed``, keeping ``error`` as the reason."""
    rid = inputs.recording_id(recording_id)
    reason = inputs.error_text(error)

    def fail(recording: Recording, now: dt.datetime) -> Change:
        if claim is not None:
            _check_claim(recording, claim, RecordingStatus.PROCESSING)
        return Change(
            recording.fail(now, reason=reason),
            events.RECORDING_FAILED,
            {
                "previous_status": recording.status.value,
                "processing_seconds": _processing_seconds(recording, now),
            },
        )

    return _respond(ctx, rid, fail, claim=claim)


def reprocess(ctx: ServiceContext, recording_id: uuid.UUID | str) -> RecordingResponse:
    """Send a ``failed`` recording whose audio was verified back to ``uploaded``."""

    def again(recording: Recording, now: dt.datetime) -> Change:
        return Change(
            recording.reprocess(now),
            events.RECORDING_REPROCESSED,
            {"previous_attempts": recording.processing_attempts},
        )

    return _respond(ctx, recording_id, again)


def _respond(
    ctx: ServiceContext,
    recording_id: uuid.UUID | str,
    step: Step,
    *,
    claim: dt.datetime | None = None,
) -> RecordingResponse:
    rid = inputs.recording_id(recording_id)
    changed = ctx.change(rid, step, write=ctx.claimed(claim))
    return RecordingResponse.from_recording(changed.recording)


def _processing_seconds(recording: Recording, now: dt.datetime) -> float | None:
    """How long the current attempt has run, when one is running."""
    if (
        recording.status is not RecordingStatus.PROCESSING
        or recording.processing_started_at is None
    ):
        return None
    return (now - recording.processing_started_at).total_seconds()


def _check_claim(recording: Recording, claim: dt.datetime, *statuses: RecordingStatus) -> None:
    """Refuse to write unless this worker's claim still holds the recording."""
    if recording.status not in statuses or recording.lease_expires_at != claim:
        raise _claim_lost(recording)


def _claim_lost(recording: Recording) -> InvalidStatusTransitionError:
    return InvalidStatusTransitionError(
        "Another worker holds this recording now; this attempt's result is dropped",
        recording_id=str(recording.id),
        current_status=recording.status.value,
        reason="claim_lost",
    )
