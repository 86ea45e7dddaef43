"""Domain values that pass between the service and its ports.

These are plain attrs classes. They know nothing of JSON (see ``schemas``),
SQL or S3; backends map their own representations to and from them. The
recording entity itself lives in :mod:`helppet_recordings.recording` and is
re-exported here.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from typing import NamedTuple

import attrs

from helppet_recordings.recording import AudioFacts, Recording
from helppet_recordings.status import RecordingStatus

__all__ = [
    "AudioFacts",
    "MultipartUploadInfo",
    "ReconcileReport",
    "Recording",
    "RecordingFilter",
    "RecordingPage",
    "StoredObject",
    "StoredPart",
    "UploadTicket",
]


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


class StoredPart(NamedTuple):
    """One part of an unfinished multipart upload as storage holds it."""

    part_number: int
    size: int
    etag: str


class MultipartUploadInfo(NamedTuple):
    """An unfinished multipart upload storage knows of: its key, id and start time."""

    key: str
    upload_id: str
    initiated: dt.datetime


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
    leftover_staging_keys: list[str] = attrs.field(factory=list)
    """Staging objects no upload is waiting for: bytes a replayed ticket left after its
    recording was verified, failed or deleted, or that no recording owns."""
    deleted_staging: int = 0
    """How many of those were deleted (0 on a dry run)."""
    unfinished_uploads: list[str] = attrs.field(factory=list)
    """Keys of multipart uploads started longer ago than an upload's deadline allows that no
    live upload waits for (abandoned: storage bills their parts until they are aborted)."""
    aborted_uploads: int = 0
    """How many of those were aborted (0 on a dry run)."""
    changed_objects: list[uuid.UUID] = attrs.field(factory=list)
    """Live, verified recordings whose object at ``s3_key`` is no longer the verified one
    (another size or ETag): replaced or rewritten after verification."""


@attrs.frozen(kw_only=True)
class RecordingPage:
    """One page of a listing and the number of recordings matching its filter."""

    items: list[Recording]
    total: int
