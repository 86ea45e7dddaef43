"""The processing transitions of a recording: a worker's claim, retries, reprocessing, results.

A mixin of :class:`~helppet_recordings.recording.Recording`, kept apart from
the upload and deletion transitions so each module stays readable. Like every
transition method, these return a changed copy after checking the move
against the transition table, and never touch storage or the repository.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import TYPE_CHECKING, Any, Protocol

from helppet_recordings.errors import InvalidStatusTransitionError
from helppet_recordings.status import RecordingStatus

if TYPE_CHECKING:
    from helppet_recordings.recording import AudioFacts, Recording

__all__ = ["ProcessingTransitions"]


class _Entity(Protocol):
    """What the transitions here read of the recording they are called on."""

    @property
    def id(self) -> uuid.UUID: ...
    @property
    def status(self) -> RecordingStatus: ...
    @property
    def processing_attempts(self) -> int: ...
    @property
    def processing_cycle(self) -> int: ...
    @property
    def has_verified_audio(self) -> bool: ...
    def copy(self, **changes: Any) -> Recording: ...
    def _moved(self, target: RecordingStatus, now: dt.datetime, **changes: Any) -> Recording: ...


class ProcessingTransitions:
    """Claims and leases of transcription workers, retries, reprocessing, audio and transcript."""

    def start_processing(
        self: _Entity, now: dt.datetime, *, lease_until: dt.datetime | None = None
    ) -> Recording:
        """Move ``uploaded`` -> ``processing``: a worker took it (attempt counted).

        ``lease_until`` is the worker's claim: should the worker die, another
        may take the recording again once it has passed. Without one (a
        host's own worker), no package worker ever takes it.
        """
        return self._moved(
            RecordingStatus.PROCESSING,
            now,
            processing_started_at=now,
            processing_error=None,
            processing_attempts=self.processing_attempts + 1,
            lease_expires_at=lease_until,
        )

    def resume_processing(
        self: _Entity, now: dt.datetime, *, lease_until: dt.datetime
    ) -> Recording:
        """Take over a ``processing`` recording whose worker's claim ran out (attempt counted)."""
        if self.status is not RecordingStatus.PROCESSING:
            raise InvalidStatusTransitionError(
                f"A recording that is {self.status.value} has no processing to take over",
                recording_id=str(self.id),
                current_status=self.status.value,
            )
        return self.copy(
            processing_started_at=now,
            processing_attempts=self.processing_attempts + 1,
            lease_expires_at=lease_until,
            updated_at=now,
        )

    def extend_lease(self: _Entity, *, lease_until: dt.datetime) -> Recording:
        """Hold a ``processing`` recording longer: the worker's claim now runs to ``lease_until``.

        A heartbeat, not a change of state: ``updated_at`` stays.
        """
        if self.status is not RecordingStatus.PROCESSING:
            raise InvalidStatusTransitionError(
                f"A recording that is {self.status.value} has no claim to extend",
                recording_id=str(self.id),
                current_status=self.status.value,
            )
        return self.copy(lease_expires_at=lease_until)

    def retry_later(
        self: _Entity, now: dt.datetime, *, reason: str, not_before: dt.datetime
    ) -> Recording:
        """Move ``processing`` -> ``uploaded`` after a transient error, until ``not_before``."""
        return self._moved(
            RecordingStatus.UPLOADED, now, processing_error=reason, lease_expires_at=not_before
        )

    def reprocess(self: _Entity, now: dt.datetime) -> Recording:
        """Move ``failed`` -> ``uploaded`` for a new round of processing; only with verified audio.

        The attempts start again from 0 and ``processing_cycle`` goes up by one.
        """
        if not self.has_verified_audio:
            raise InvalidStatusTransitionError(
                "Only a recording whose audio was verified can be processed again",
                recording_id=str(self.id),
                current_status=self.status.value,
                requested_status=RecordingStatus.UPLOADED.value,
            )
        return self._moved(
            RecordingStatus.UPLOADED,
            now,
            processing_error=None,
            processing_started_at=None,
            processing_completed_at=None,
            processing_attempts=0,
            processing_cycle=self.processing_cycle + 1,
            lease_expires_at=now,
        )

    def record_audio(self: _Entity, now: dt.datetime, facts: AudioFacts) -> Recording:
        """Keep what decoding the stored file measured (no status change)."""
        return self.copy(
            audio_format=facts.format,
            audio_codec=facts.codec,
            audio_duration_seconds=facts.duration_seconds,
            audio_sample_rate=facts.sample_rate,
            audio_channels=facts.channels,
            updated_at=now,
        )

    def record_transcript(
        self: _Entity,
        now: dt.datetime,
        *,
        text: str,
        confidence: float | None,
        language: str | None,
        service: str | None,
    ) -> Recording:
        """Move ``processing`` -> ``transcribed`` with the transcript."""
        return self._moved(
            RecordingStatus.TRANSCRIBED,
            now,
            transcript_text=text,
            transcript_confidence=confidence,
            transcript_language=language,
            transcription_service=service,
            processing_completed_at=now,
            lease_expires_at=None,
        )
