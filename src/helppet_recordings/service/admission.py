"""What every kind of upload shares when it starts: the checks, the new record, its deadline."""

from __future__ import annotations

import datetime as dt
import uuid

from helppet_recordings import policy
from helppet_recordings.errors import PermissionDeniedError
from helppet_recordings.keys import build_key
from helppet_recordings.models import Recording
from helppet_recordings.schemas import InitiateUploadRequest
from helppet_recordings.service.changes import ServiceContext
from helppet_recordings.status import RecordingStatus

__all__ = ["admit", "new_recording", "same_request", "upload_deadline"]


def admit(ctx: ServiceContext, owner: uuid.UUID, req: InitiateUploadRequest) -> tuple[str, str]:
    """Check the type, the extension and the caller's context; return the MIME type and extension.

    Raises ``UNSUPPORTED_CONTENT_TYPE`` or ``PERMISSION_DENIED``.
    """
    mime_type, audio = policy.resolve_audio_type(req.content_type)
    policy.check_extension_matches(req.filename, audio)
    if ctx.authorize_context is not None and not ctx.authorize_context(
        owner, req.appointment_id, req.visit_id
    ):
        raise PermissionDeniedError(
            appointment_id=None if req.appointment_id is None else str(req.appointment_id),
            visit_id=None if req.visit_id is None else str(req.visit_id),
        )
    return mime_type, audio.extension


def new_recording(
    ctx: ServiceContext,
    owner: uuid.UUID,
    req: InitiateUploadRequest,
    *,
    mime_type: str,
    extension: str,
    bucket: str,
    now: dt.datetime,
) -> Recording:
    """Build the ``uploading`` record of a new upload: its final key, no client text in it.

    ``upload_key`` is left unset; a POST upload sets it to the key its tickets name.
    """
    settings = ctx.settings
    key = build_key(
        prefix=settings.s3_recordings_prefix,
        user_id=owner,
        appointment_id=req.appointment_id,
        visit_id=req.visit_id,
        extension=extension,
        created_at=now,
    )
    return Recording(
        id=uuid.uuid4(),
        recorded_by_user_id=owner,
        appointment_id=req.appointment_id,
        visit_id=req.visit_id,
        recording_type=req.recording_type,
        status=RecordingStatus.UPLOADING,
        filename=key.rsplit("/", 1)[-1],
        original_filename=req.filename,
        mime_type=mime_type,
        s3_bucket=bucket,
        s3_key=key,
        s3_url=ctx.storage.object_url(key),
        upload_expires_at=upload_deadline(ctx, now),
        idempotency_key=req.idempotency_key,
        content_md5=req.content_md5,
        content_sha256=req.content_sha256,
        created_at=now,
        updated_at=now,
    )


def upload_deadline(ctx: ServiceContext, now: dt.datetime) -> dt.datetime:
    """When an upload started (or renewed) ``now`` is declared failed if nothing arrived."""
    settings = ctx.settings
    return now + dt.timedelta(
        seconds=settings.s3_presigned_url_expiration + settings.upload_grace_seconds
    )


def same_request(existing: Recording, req: InitiateUploadRequest, mime_type: str) -> bool:
    """Whether a repeated initiate (same idempotency key) asks for the same recording."""
    return (
        not existing.is_deleted
        and existing.original_filename == req.filename
        and existing.mime_type == mime_type
        and existing.appointment_id == req.appointment_id
        and existing.visit_id == req.visit_id
        and existing.recording_type == req.recording_type
        # Storage's checksums replace the declared ones at completion; a ticket pins the
        # declared SHA-256, so a retry may not declare another.
        and (req.content_sha256 is None or req.content_sha256 == existing.content_sha256)
    )
