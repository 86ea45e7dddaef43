"""Domain objects: the recording entity and the values that pass between ports.

These are plain attrs classes. They know nothing of JSON (see ``schemas``),
SQL or S3; backends map their own representations to and from them.
"""

from __future__ import annotations

import copy
import datetime as dt
import uuid
from collections.abc import Mapping
from typing import Any, Final

import attrs

from helppet_recordings.errors import InvalidStatusTransitionError
from helppet_recordings.status import RecordingStatus, RecordingType, check_transition

__all__ = [
    "ReconcileReport",
    "Recording",
    "RecordingFilter",
    "RecordingPage",
    "StoredObject",
    "UploadTicket",
]


@attrs.define(kw_only=True, slots=False)
class Recording:
    """One audio recording and everything known about it.

    The fields mirror the design's ``recordings`` table, plus:

    - ``upload_expires_at``: the deadline after which an upload that never
      arrived is declared failed;
    - ``idempotency_key``: the client's key that makes a retried initiate
      return this recording instead of creating another;
    - ``content_md5`` / ``content_sha256``: checksums the client declared
      (lower-case hex), checked against what storage reports;
    - ``purged_at``: when a soft-deleted recording's audio was removed and its
      personal fields scrubbed.

    The entity carries its own rules: each transition method returns a changed
    copy after checking the move against the transition table, and never
    touches storage or the repository. The service loads, transitions, saves
    with a compare-and-set and publishes the change (``service/changes.py``).

    The class keeps a ``__dict__`` (no slots) so that :meth:`copy` is cheap.
    """

    id: uuid.UUID
    recorded_by_user_id: uuid.UUID
    appointment_id: uuid.UUID | None = None
    visit_id: uuid.UUID | None = None
    recording_type: RecordingType = RecordingType.VISIT_AUDIO
    status: RecordingStatus = RecordingStatus.UPLOADING
    filename: str
    original_filename: str | None = None
    file_size_bytes: int | None = None
    duration_seconds: float | None = None
    mime_type: str | None = None
    s3_bucket: str
    s3_key: str
    s3_url: str | None = None
    transcript_text: str | None = None
    transcript_confidence: float | None = None
    transcript_language: str | None = None
    transcription_service: str | None = None
    processing_started_at: dt.datetime | None = None
    processing_completed_at: dt.datetime | None = None
    processing_error: str | None = None
    recording_metadata: dict[str, Any] | None = None
    is_deleted: bool = False
    deleted_at: dt.datetime | None = None
    deleted_by_user_id: uuid.UUID | None = None
    upload_expires_at: dt.datetime | None = None
    idempotency_key: str | None = None
    content_md5: str | None = None
    content_sha256: str | None = None
    purged_at: dt.datetime | None = None
    created_at: dt.datetime
    updated_at: dt.datetime

    def copy(self, **changes: Any) -> Recording:
        """Return a copy with ``changes`` applied (the metadata dict is copied too)."""
        if changes and not _RECORDING_FIELDS.issuperset(changes):
            unknown = sorted(set(changes) - _RECORDING_FIELDS)
            msg = f"Recording has no field(s) {unknown}"
            raise TypeError(msg)
        # A plain __dict__ copy: repositories copy on every read and write, and
        # attrs.evolve costs several times more on that hot path.
        clone = object.__new__(Recording)
        values = clone.__dict__
        values.update(self.__dict__)
        if changes:
            values.update(changes)
        metadata = values["recording_metadata"]
        if metadata is not None and "recording_metadata" not in changes:
            values["recording_metadata"] = copy.deepcopy(metadata)
        return clone

    def is_owned_by(self, user_id: uuid.UUID) -> bool:
        """Return whether ``user_id`` recorded this recording."""
        return self.recorded_by_user_id == user_id

    @property
    def has_verified_audio(self) -> bool:
        """Whether its object arrived and passed verification, so it can be read.

        That is every status after ``uploading``, except a ``failed`` recording
        whose upload never arrived: verification is what sets the size.
        """
        return self.status is not RecordingStatus.UPLOADING and self.file_size_bytes is not None

    # ----------------------------------------------------------------------- transitions

    def _moved(self, target: RecordingStatus, now: dt.datetime, **changes: Any) -> Recording:
        check_transition(self.status, target)
        return self.copy(status=target, updated_at=now, **changes)

    def mark_uploaded(
        self,
        now: dt.datetime,
        *,
        size: int,
        md5: str | None = None,
        sha256: str | None = None,
        duration_seconds: float | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Recording:
        """Move ``uploading`` -> ``uploaded``: storage confirmed an object of ``size`` bytes.

        Checksums, duration and metadata replace the recorded ones when given.
        """
        changes: dict[str, Any] = {"file_size_bytes": size}
        if md5 is not None:
            changes["content_md5"] = md5
        if sha256 is not None:
            changes["content_sha256"] = sha256
        if duration_seconds is not None:
            changes["duration_seconds"] = duration_seconds
        if metadata is not None:
            changes["recording_metadata"] = metadata
        return self._moved(RecordingStatus.UPLOADED, now, **changes)

    def start_processing(self, now: dt.datetime) -> Recording:
        """Move ``uploaded`` -> ``processing``: a worker took it."""
        return self._moved(
            RecordingStatus.PROCESSING, now, processing_started_at=now, processing_error=None
        )

    def record_transcript(
        self,
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
        )

    def fail(self, now: dt.datetime, *, reason: str) -> Recording:
        """Move any status that is not final to ``failed``, keeping ``reason``."""
        completed = (
            now if self.status is RecordingStatus.PROCESSING else self.processing_completed_at
        )
        return self._moved(
            RecordingStatus.FAILED, now, processing_error=reason, processing_completed_at=completed
        )

    def renew(self, now: dt.datetime, *, upload_expires_at: dt.datetime) -> Recording:
        """Push the upload deadline of an ``uploading`` recording (a new ticket was issued)."""
        if self.status is not RecordingStatus.UPLOADING:
            raise InvalidStatusTransitionError(
                f"A recording that is {self.status.value} takes no new upload",
                recording_id=str(self.id),
                current_status=self.status.value,
            )
        return self.copy(upload_expires_at=upload_expires_at, updated_at=now)

    def soft_delete(self, now: dt.datetime, *, by: uuid.UUID) -> Recording:
        """Hide it from its owner; the audio stays until purged."""
        return self.copy(is_deleted=True, deleted_at=now, deleted_by_user_id=by, updated_at=now)

    def scrubbed(self, now: dt.datetime) -> Recording:
        """Return the purged form of a soft-deleted recording: personal content removed.

        Ids, keys and timestamps stay for the audit trail.
        """
        return self.copy(
            original_filename=None,
            transcript_text=None,
            recording_metadata=None,
            processing_error=None,
            s3_url=None,
            purged_at=now,
            updated_at=now,
        )


_RECORDING_FIELDS: Final = frozenset(field.name for field in attrs.fields(Recording))


@attrs.frozen(kw_only=True)
class UploadTicket:
    """What a client needs to upload one object: a POST URL and the form fields to send."""

    url: str
    fields: Mapping[str, str]
    key: str
    bucket: str
    expires_in: int
    max_size: int


@attrs.frozen(kw_only=True)
class StoredObject:
    """What storage reports about an object it holds."""

    key: str
    size: int
    content_type: str | None = None
    etag: str | None = None
    server_side_encryption: str | None = None
    last_modified: dt.datetime | None = None
    sha256: str | None = None
    """Lower-case hex SHA-256 of the body, where the backend knows it."""
    crc64nvme: str | None = None
    """Lower-case hex CRC-64/NVME of the body, where the backend reports one (S3 checksums)."""
    kms_key_id: str | None = None
    """The KMS key that encrypts it, when ``server_side_encryption`` is ``aws:kms``."""
    version_id: str | None = None
    """The object version, where the bucket keeps versions."""

    @property
    def md5(self) -> str | None:
        """The body's MD5 (lower-case hex) when the ETag is one: a single-part, non-KMS upload."""
        if (self.server_side_encryption or "").startswith("aws:kms"):
            return None  # an SSE-KMS ETag is not the MD5, whatever it looks like
        etag = (self.etag or "").lower()
        if len(etag) == 32 and all(ch in "0123456789abcdef" for ch in etag):
            return etag
        return None


@attrs.frozen(kw_only=True)
class RecordingFilter:
    """Which recordings a listing returns: one owner's live recordings, optionally narrowed."""

    user_id: uuid.UUID
    appointment_id: uuid.UUID | None = None
    visit_id: uuid.UUID | None = None
    status: RecordingStatus | None = None

    def matches(self, recording: Recording) -> bool:
        """Return whether ``recording`` belongs in a listing with this filter."""
        return (
            not recording.is_deleted
            and recording.recorded_by_user_id == self.user_id
            and (self.appointment_id is None or recording.appointment_id == self.appointment_id)
            and (self.visit_id is None or recording.visit_id == self.visit_id)
            and (self.status is None or recording.status == self.status)
        )


@attrs.frozen(kw_only=True)
class ReconcileReport:
    """What a reconcile pass found (and, unless a dry run, deleted)."""

    scanned_objects: int
    scanned_recordings: int
    orphan_keys: list[str]
    """Objects under the prefix that no recording owns."""
    missing_objects: list[uuid.UUID]
    """Live, verified recordings whose object is gone from storage."""
    deleted_orphans: int
    """How many orphans were deleted (0 on a dry run)."""
    dry_run: bool


@attrs.frozen(kw_only=True)
class RecordingPage:
    """One page of a listing and the number of recordings matching its filter."""

    items: list[Recording]
    total: int
