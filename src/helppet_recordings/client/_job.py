"""One upload in progress: the file, what the caller said about it, its state and progress."""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path
from typing import Any

import attrs

from helppet_recordings.client._files import FileIdentity
from helppet_recordings.client._progress import ProgressTracker
from helppet_recordings.client._state import StateKeeper
from helppet_recordings.errors import ValidationError
from helppet_recordings.schemas import (
    CompleteUploadRequest,
    InitiateMultipartUploadRequest,
    InitiateUploadRequest,
)
from helppet_recordings.service.inputs import parse
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

    def request_sha256(self) -> str:
        """Return a digest of what the recording is asked for: what a resumed upload must match."""
        asked = {
            "content_type": self.content_type,
            "recording_type": self.recording_type.value,
            "appointment_id": None if self.appointment_id is None else str(self.appointment_id),
            "visit_id": None if self.visit_id is None else str(self.visit_id),
            "filename": self.filename,
        }
        return hashlib.sha256(json.dumps(asked, sort_keys=True).encode()).hexdigest()

    def check(self, *, multipart: bool) -> None:
        """Validate the initiate and complete requests before anything is sent.

        Raises ``VALIDATION_ERROR`` (the package's error, naming each field)
        for what the server would refuse, an empty file included.
        """
        if self.identity.size == 0:
            raise ValidationError.for_field("path", "is an empty file: there is no audio to send")
        fields = {**self.initiate_fields(), "content_sha256": self.identity.sha256}
        if multipart:
            parse(InitiateMultipartUploadRequest, {**fields, "file_size_bytes": self.identity.size})
        else:
            parse(InitiateUploadRequest, fields)
        self.completion(content_sha256=None)

    def check_unchanged(self) -> None:
        """Raise ``FILE_CHANGED`` unless the file still has the size and time measured at start."""
        self.identity.check_path(self.path)

    def completion(self, *, content_sha256: str | None) -> CompleteUploadRequest:
        """Return the complete request: size, duration, metadata and, if given, the SHA-256."""
        fields = {
            "file_size_bytes": self.identity.size,
            "duration_seconds": self.duration_seconds,
            "recording_metadata": self.metadata,
            "content_sha256": content_sha256,
        }
        return parse(CompleteUploadRequest, fields)
