"""Rows of the recordings table to and from :class:`~helppet_recordings.models.Recording`."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any, Final

from helppet_recordings import policy
from helppet_recordings.errors import RepositoryError
from helppet_recordings.models import Recording
from helppet_recordings.status import RecordingStatus, RecordingType

__all__ = ["COLUMNS", "from_db_time", "to_db_time", "to_recording", "to_row"]

COLUMNS: Final = (
    "id",
    "visit_id",
    "appointment_id",
    "recorded_by_user_id",
    "recording_type",
    "status",
    "filename",
    "original_filename",
    "file_size_bytes",
    "duration_seconds",
    "mime_type",
    "s3_bucket",
    "s3_key",
    "s3_url",
    "transcript_text",
    "transcript_confidence",
    "transcript_language",
    "transcription_service",
    "processing_started_at",
    "processing_completed_at",
    "processing_error",
    "recording_metadata",
    "is_deleted",
    "deleted_at",
    "deleted_by_user_id",
    "created_at",
    "updated_at",
    "upload_expires_at",
    "idempotency_key",
    "content_md5",
    "content_sha256",
    "purged_at",
)
"""Every column, in the order ``to_recording`` unpacks a row."""
_STATUSES: Final = {status.value: status for status in RecordingStatus}
_TYPES: Final = {kind.value: kind for kind in RecordingType}


def to_row(recording: Recording) -> dict[str, Any]:
    """Return the column values of ``recording``."""
    metadata_json = (
        None
        if recording.recording_metadata is None
        else policy.dump_metadata(recording.recording_metadata)
    )
    return {
        "id": recording.id,
        "visit_id": recording.visit_id,
        "appointment_id": recording.appointment_id,
        "recorded_by_user_id": recording.recorded_by_user_id,
        "recording_type": RecordingType(recording.recording_type).value,
        "status": RecordingStatus(recording.status).value,
        "filename": recording.filename,
        "original_filename": recording.original_filename,
        "file_size_bytes": recording.file_size_bytes,
        "duration_seconds": recording.duration_seconds,
        "mime_type": recording.mime_type,
        "s3_bucket": recording.s3_bucket,
        "s3_key": recording.s3_key,
        "s3_url": recording.s3_url,
        "transcript_text": recording.transcript_text,
        "transcript_confidence": recording.transcript_confidence,
        "transcript_language": recording.transcript_language,
        "transcription_service": recording.transcription_service,
        "processing_started_at": to_db_time(recording.processing_started_at),
        "processing_completed_at": to_db_time(recording.processing_completed_at),
        "processing_error": recording.processing_error,
        "recording_metadata": metadata_json,
        "is_deleted": recording.is_deleted,
        "deleted_at": to_db_time(recording.deleted_at),
        "deleted_by_user_id": recording.deleted_by_user_id,
        "created_at": to_db_time(recording.created_at),
        "updated_at": to_db_time(recording.updated_at),
        "upload_expires_at": to_db_time(recording.upload_expires_at),
        "idempotency_key": recording.idempotency_key,
        "content_md5": recording.content_md5,
        "content_sha256": recording.content_sha256,
        "purged_at": to_db_time(recording.purged_at),
    }


def to_recording(row: Sequence[Any]) -> Recording:
    """Return the domain object for one row; a row the package cannot read is a RepositoryError."""
    try:
        (
            recording_id,
            visit_id,
            appointment_id,
            recorded_by_user_id,
            recording_type,
            status,
            filename,
            original_filename,
            file_size_bytes,
            duration_seconds,
            mime_type,
            s3_bucket,
            s3_key,
            s3_url,
            transcript_text,
            transcript_confidence,
            transcript_language,
            transcription_service,
            processing_started_at,
            processing_completed_at,
            processing_error,
            recording_metadata,
            is_deleted,
            deleted_at,
            deleted_by_user_id,
            created_at,
            updated_at,
            upload_expires_at,
            idempotency_key,
            content_md5,
            content_sha256,
            purged_at,
        ) = row
        return Recording(
            id=recording_id,
            visit_id=visit_id,
            appointment_id=appointment_id,
            recorded_by_user_id=recorded_by_user_id,
            recording_type=_TYPES[recording_type],
            status=_STATUSES[status],
            filename=filename,
            original_filename=original_filename,
            file_size_bytes=file_size_bytes,
            duration_seconds=duration_seconds,
            mime_type=mime_type,
            s3_bucket=s3_bucket,
            s3_key=s3_key,
            s3_url=s3_url,
            transcript_text=transcript_text,
            transcript_confidence=transcript_confidence,
            transcript_language=transcript_language,
            transcription_service=transcription_service,
            processing_started_at=from_db_time(processing_started_at),
            processing_completed_at=from_db_time(processing_completed_at),
            processing_error=processing_error,
            recording_metadata=(
                None if recording_metadata is None else json.loads(recording_metadata)
            ),
            is_deleted=bool(is_deleted),
            deleted_at=from_db_time(deleted_at),
            deleted_by_user_id=deleted_by_user_id,
            upload_expires_at=from_db_time(upload_expires_at),
            idempotency_key=idempotency_key,
            content_md5=content_md5,
            content_sha256=content_sha256,
            purged_at=from_db_time(purged_at),
            created_at=_required_time(created_at, "created_at"),
            updated_at=_required_time(updated_at, "updated_at"),
        )
    except (ValueError, TypeError, KeyError) as exc:
        raise RepositoryError(
            "A stored recording could not be read", operation="read", recording_id=str(row[0])
        ) from exc


def to_db_time(value: dt.datetime | None) -> dt.datetime | None:
    """Return ``value`` in UTC; SQLite stores no offset, so every stored time is UTC."""
    if value is None:
        return None
    if value.tzinfo is None or value.utcoffset() is None:
        msg = "datetimes stored in the repository must be timezone-aware"
        raise ValueError(msg)
    return value.astimezone(dt.UTC)


def from_db_time(value: dt.datetime | None) -> dt.datetime | None:
    """Return a stored time as an aware UTC datetime (SQLite gives it back naive)."""
    if value is None:
        return None
    if value.tzinfo is dt.UTC:
        return value
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def _required_time(value: dt.datetime | None, column: str) -> dt.datetime:
    converted = from_db_time(value)
    if converted is None:
        msg = f"{column} is NULL"
        raise ValueError(msg)
    return converted
