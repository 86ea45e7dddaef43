"""The wire: pydantic models of every request and response (the design's JSON shapes).

This is the only module that knows JSON shapes. Shape rules (types, ranges,
filename characters, metadata size) are checked here, so a bad request fails
the same way through the service and through an HTTP framework. Rules that
depend on configuration or carry their own error code (content types, the
maximum file size) are checked by the service.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
)

from helppet_recordings import policy
from helppet_recordings.errors import RecordingError
from helppet_recordings.models import Recording
from helppet_recordings.status import RecordingStatus, RecordingType

__all__ = [
    "AudioResponse",
    "CompleteUploadRequest",
    "DownloadUrlResponse",
    "ErrorResponse",
    "InitiateMultipartUploadRequest",
    "InitiateUploadRequest",
    "InitiateUploadResponse",
    "MultipartUploadResponse",
    "PartUploadUrl",
    "RecordingListResponse",
    "RecordingResponse",
    "SignUploadPartsRequest",
    "UploadedPart",
]


def _as_recording_error(check: Any) -> Any:
    """Run a policy check, turning its RecordingError into the ValueError pydantic expects."""

    def run(value: Any) -> Any:
        try:
            return check(value)
        except RecordingError as exc:
            errors = exc.details.get("errors") or [{"message": exc.message}]
            raise ValueError(errors[0]["message"]) from exc

    return run


Duration = Annotated[
    float, Field(strict=True, ge=0, le=policy.MAX_DURATION_SECONDS, allow_inf_nan=False)
]
"""Seconds of audio: finite, from 0 to one day."""

Filename = Annotated[
    str,
    Field(min_length=1, max_length=policy.MAX_FILENAME_LENGTH * 4),
    AfterValidator(_as_recording_error(policy.check_filename)),
]
"""A plain file name; see :func:`helppet_recordings.policy.check_filename`."""


def _not_nil(value: uuid.UUID) -> uuid.UUID:
    if value.int == 0:
        msg = "must not be the nil UUID"
        raise ValueError(msg)
    return value


ContextId = Annotated[uuid.UUID, AfterValidator(_not_nil)]
"""An appointment or visit id: any UUID but the nil one."""


def _checksum(algorithm: str) -> Any:
    def normalize(value: str) -> str:
        return policy.normalize_checksum(value, algorithm=algorithm)

    return normalize


Md5 = Annotated[str, Field(max_length=64), AfterValidator(_checksum("md5"))]
"""An MD5 digest, hex or base64 (as in ``Content-MD5``); stored as lower-case hex."""

Sha256 = Annotated[str, Field(max_length=96), AfterValidator(_checksum("sha256"))]
"""A SHA-256 digest, hex or base64; stored as lower-case hex."""

IdempotencyKey = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$")]
"""A client-chosen key (a UUID, say) that makes retrying an initiate safe."""

ContentType = Annotated[str, Field(min_length=1, max_length=policy.MAX_CONTENT_TYPE_LENGTH)]
"""A MIME type as the client declared it; checked against the allow-list by the service."""


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, str_strip_whitespace=False)


class InitiateUploadRequest(_Request):
    """Ask for an upload ticket for one recording (its repr leaves the filename out)."""

    appointment_id: ContextId | None = None
    visit_id: ContextId | None = None
    recording_type: RecordingType = RecordingType.VISIT_AUDIO
    filename: Filename = Field(repr=False)  # personal: no repr shows it
    content_type: ContentType
    estimated_duration_seconds: Duration | None = None
    idempotency_key: IdempotencyKey | None = None
    content_md5: Md5 | None = None
    content_sha256: Sha256 | None = None


FileSize = Annotated[int, Field(strict=True, ge=0, le=2**63 - 1)]
"""A size in bytes as a client declares it; the service checks it against ``max_file_size``."""


class InitiateMultipartUploadRequest(InitiateUploadRequest):
    """Ask for a resumable (multipart) upload of a file of ``file_size_bytes`` bytes."""

    file_size_bytes: FileSize


class SignUploadPartsRequest(_Request):
    """Ask for fresh part URLs: those in ``part_numbers``, or every part still missing.

    Numbers past the upload's last part are refused by the service; repeats count once.
    """

    part_numbers: list[Annotated[int, Field(strict=True, ge=1)]] | None = None


class CompleteUploadRequest(_Request):
    """Tell the service an upload finished, with what the client knows about it."""

    file_size_bytes: FileSize
    duration_seconds: Duration | None = None
    recording_metadata: dict[str, Any] | None = Field(default=None, repr=False)
    content_md5: Md5 | None = None
    content_sha256: Sha256 | None = None

    @field_validator("recording_metadata")
    @classmethod
    def _metadata_fits(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            _as_recording_error(policy.dump_metadata)(value)
        return value


class InitiateUploadResponse(BaseModel):
    """An upload ticket: POST every ``upload_fields`` entry, then the file as ``file``."""

    recording_id: uuid.UUID
    upload_url: str
    upload_fields: dict[str, str]
    s3_key: str
    bucket: str
    expires_in: int
    max_file_size: int


class PartUploadUrl(BaseModel):
    """Where to send one part: ``PUT url`` with exactly ``size`` bytes, before ``expires_in``."""

    part_number: int
    url: str
    size: int
    expires_in: int


class UploadedPart(BaseModel):
    """A part storage already holds, with its ETag as storage lists it (when it lists one).

    A part's ETag is the MD5 of its bytes on S3 (unless it is encrypted with
    SSE-KMS or SSE-C), LocalStorage and InMemoryStorage: a client compares it
    with the MD5 of its own bytes for that part before it counts the part as
    sent. ``etag`` is None when storage has assembled the parts already.
    """

    part_number: int
    size: int
    etag: str | None = None


class MultipartUploadResponse(BaseModel):
    """A resumable upload: the part plan, a URL per part still to send, and what storage holds.

    Part ``n`` is the ``size`` bytes of the file from offset ``(n - 1) * part_size``.
    """

    recording_id: uuid.UUID
    s3_key: str
    bucket: str
    part_size: int
    parts: list[PartUploadUrl]
    uploaded_parts: list[UploadedPart]
    expires_in: int
    max_file_size: int


class AudioResponse(BaseModel):
    """What decoding the stored file measured (not what the client declared)."""

    format: str
    codec: str
    duration_seconds: float
    sample_rate: int
    channels: int


class RecordingResponse(BaseModel):
    """Everything a client may know about one recording.

    Its repr leaves out the personal fields (original filename, transcript,
    processing error, metadata); its JSON carries them.
    """

    id: uuid.UUID
    appointment_id: uuid.UUID | None
    visit_id: uuid.UUID | None
    recorded_by_user_id: uuid.UUID
    recording_type: RecordingType
    status: RecordingStatus
    filename: str
    original_filename: str | None = Field(repr=False)
    file_size_bytes: int | None
    duration_seconds: float | None
    mime_type: str | None
    s3_bucket: str
    s3_key: str
    transcript_text: str | None = Field(repr=False)
    transcript_confidence: float | None
    transcript_language: str | None
    transcription_service: str | None
    processing_started_at: dt.datetime | None
    processing_completed_at: dt.datetime | None
    processing_error: str | None = Field(repr=False)
    recording_metadata: dict[str, Any] | None = Field(repr=False)
    is_deleted: bool
    upload_expires_at: dt.datetime | None
    audio: AudioResponse | None = None
    """Measured from the file once a worker inspected it; ``duration_seconds`` above is the
    client's declaration."""
    checksum_status: str | None = None
    """``verified`` when storage confirmed the checksum the client declared, ``unverified``
    when it could not, null when none was declared."""
    created_at: dt.datetime
    updated_at: dt.datetime

    @classmethod
    def from_recording(cls, recording: Recording) -> RecordingResponse:
        """Build the response for a domain recording.

        Only the fields declared above are read: the rest of the domain object
        (idempotency key, checksums, deleting user, purge time) stays private.
        """
        return cls.model_validate(recording, from_attributes=True)


class RecordingListResponse(BaseModel):
    """One page of a caller's recordings."""

    items: list[RecordingResponse]
    total: int
    limit: int
    offset: int
    next_cursor: str | None = None
    """Pass it back as ``cursor`` for the next page (at the cost of the first); null on the
    last page."""


class DownloadUrlResponse(BaseModel):
    """A signed, expiring URL to download a recording's audio."""

    download_url: str
    expires_in: int


class ErrorResponse(BaseModel):
    """The error body: what went wrong, a stable code, and what to fix."""

    message: str
    error_code: str
    details: dict[str, Any] = Field(default_factory=dict)
