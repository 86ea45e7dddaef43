"""Recording statuses, recording types and the one table of allowed status changes.

::

    uploading ──> uploaded ──> processing ──> transcribed
        │           ▲  │  ◀──────┘  │
        │           │  │  (retry)   │
        └───────────┼──┴────────────┴──> failed
                    └──── (reprocess) ────┘

``transcribed`` is final. Two moves lead back to ``uploaded``, each for one
purpose only:

- ``processing -> uploaded``: a transient transcription error (a network
  failure, a 429 or 5xx, a timeout); the recording waits for its next attempt
  (``lease_expires_at``), counting attempts in ``processing_attempts``;
- ``failed -> uploaded``: ``reprocess(recording_id)`` sends a failed
  recording whose audio was verified back for another attempt. A failed
  upload (no verified audio) can never go back.

Every status change in the package goes through :func:`check_transition`;
operations add their own preconditions (completion needs ``uploading``).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

from helppet_recordings.errors import InvalidStatusTransitionError

__all__ = ["TRANSITIONS", "RecordingStatus", "RecordingType", "can_transition", "check_transition"]


class RecordingStatus(enum.StrEnum):
    """Where a recording is in its life cycle."""

    UPLOADING = "uploading"
    UPLOADED = "uploaded"
    PROCESSING = "processing"
    TRANSCRIBED = "transcribed"
    FAILED = "failed"


class RecordingType(enum.StrEnum):
    """What a recording is of; ``visit_audio`` is the default."""

    VISIT_AUDIO = "visit_audio"
    DICTATION = "dictation"
    VOICE_NOTE = "voice_note"
    PHONE_CALL = "phone_call"
    OTHER = "other"


TRANSITIONS: Mapping[RecordingStatus, frozenset[RecordingStatus]] = {
    RecordingStatus.UPLOADING: frozenset({RecordingStatus.UPLOADED, RecordingStatus.FAILED}),
    RecordingStatus.UPLOADED: frozenset({RecordingStatus.PROCESSING, RecordingStatus.FAILED}),
    RecordingStatus.PROCESSING: frozenset(
        {RecordingStatus.TRANSCRIBED, RecordingStatus.FAILED, RecordingStatus.UPLOADED}
    ),
    RecordingStatus.TRANSCRIBED: frozenset(),
    RecordingStatus.FAILED: frozenset({RecordingStatus.UPLOADED}),
}
"""For each status, the statuses a recording may move to next."""


def can_transition(current: RecordingStatus, target: RecordingStatus) -> bool:
    """Return whether a recording in ``current`` may move to ``target``."""
    return target in TRANSITIONS[current]


def check_transition(current: RecordingStatus, target: RecordingStatus) -> None:
    """Raise ``INVALID_STATUS_TRANSITION`` unless ``current`` may move to ``target``."""
    if not can_transition(current, target):
        allowed = sorted(s.value for s in TRANSITIONS[current])
        raise InvalidStatusTransitionError(
            f"A recording that is {current.value} cannot become {target.value}",
            current_status=current.value,
            requested_status=target.value,
            allowed_statuses=allowed,
        )
