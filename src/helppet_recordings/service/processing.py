"""What workers do after an upload: take it, record its transcript, or fail it.

The transcription worker (``helppet_recordings.transcription``) drives these;
a host with its own worker calls them through ``RecordingService``.
"""

from __future__ import annotations

import datetime as dt
import uuid

from helppet_recordings import events
from helppet_recordings.models import Recording
from helppet_recordings.schemas import RecordingResponse
from helppet_recordings.service import inputs
from helppet_recordings.service.changes import Change, ServiceContext, Step

__all__ = ["mark_failed", "record_transcript", "start_processing"]


def start_processing(ctx: ServiceContext, recording_id: uuid.UUID | str) -> RecordingResponse:
    """Move ``uploaded`` -> ``processing``: a worker took the recording."""

    def start(recording: Recording, now: dt.datetime) -> Change:
        return Change(recording.start_processing(now), events.PROCESSING_STARTED)

    return _respond(ctx, recording_id, start)


def record_transcript(
    ctx: ServiceContext,
    recording_id: uuid.UUID | str,
    *,
    text: str,
    confidence: float | None,
    language: str | None,
    service: str | None,
) -> RecordingResponse:
    """Store a transcript: ``processing`` -> ``transcribed``."""
    rid = inputs.recording_id(recording_id)
    text, confidence, language, service = inputs.transcript_fields(
        text, confidence, language, service
    )

    def record(recording: Recording, now: dt.datetime) -> Change:
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
            },
        )

    return _respond(ctx, rid, record)


def mark_failed(
    ctx: ServiceContext, recording_id: uuid.UUID | str, *, error: str
) -> RecordingResponse:
    """Move any status that is not final to ``failed``, keeping ``error`` as the reason."""
    rid = inputs.recording_id(recording_id)
    reason = inputs.error_text(error)

    def fail(recording: Recording, now: dt.datetime) -> Change:
        return Change(
            recording.fail(now, reason=reason),
            events.RECORDING_FAILED,
            {"previous_status": recording.status.value},
        )

    return _respond(ctx, rid, fail)


def _respond(
    ctx: ServiceContext,
    recording_id: uuid.UUID | str,
    step: Step,
) -> RecordingResponse:
    rid = inputs.recording_id(recording_id)
    return RecordingResponse.from_recording(ctx.change(rid, step).recording)
