"""One upload in progress: the file, what the caller said about it, its state and progress."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import attrs

from helppet_recordings.client._files import FileIdentity
from helppet_recordings.client._progress import ProgressTracker
from helppet_recordings.client._state import StateKeeper
from helppet_recordings.schemas import CompleteUploadRequest
from helppet_recordings.status import RecordingType

__all__ = ["MAX_RENEWALS", "UploadJob"]

MAX_RENEWALS = 3
"""How many fresh tickets or part URLs in a row one send may ask for before it gives up."""


@attrs.frozen(kw_only=True)
class UploadJob:
    """Everything the POST and multipart flows need about one upload."""

    path: Path
    identity: FileIdentity
    content_type: str
    filename: str
    recording_type: RecordingType
    appointment_id: uuid.UUID | None
    visit_id: uuid.UUID | None
    duration_seconds: float | None
    metadata: dict[str, Any] | None
    keeper: StateKeeper
    tracker: ProgressTracker

    def initiate_fields(self) -> dict[str, Any]:
        """Return the fields of an initiate request (without checksums or size)."""
        return {
            "filename": self.filename,
            "content_type": self.content_type,
            "recording_type": self.recording_type,
            "appointment_id": self.appointment_id,
            "visit_id": self.visit_id,
            "estimated_duration_seconds": self.duration_seconds,
            "idempotency_key": self.keeper.state.idempotency_key,
        }

    def completion(self, *, content_sha256: str | None) -> CompleteUploadRequest:
        """Return the complete request: size, duration, metadata and, if given, the SHA-256."""
        return CompleteUploadRequest(
            file_size_bytes=self.identity.size,
            duration_seconds=self.duration_seconds,
            recording_metadata=self.metadata,
            content_sha256=content_sha256,
        )
