"""The upload use cases: initiate, renew a ticket, complete (verify) an upload."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from typing import Any

from helppet_recordings import events, policy
from helppet_recordings.errors import (
    DuplicateRecordingError,
    IdempotencyConflictError,
    InvalidStatusTransitionError,
    PermissionDeniedError,
    RecordingError,
    UnavailableError,
    UploadNotFoundError,
    UploadSizeMismatchError,
    UploadTimeoutError,
)
from helppet_recordings.keys import build_key
from helppet_recordings.models import Recording, UploadTicket
from helppet_recordings.schemas import (
    CompleteUploadRequest,
    InitiateUploadRequest,
    InitiateUploadResponse,
    RecordingResponse,
)
from helppet_recordings.service import inputs
from helppet_recordings.service.changes import Change, ServiceContext
from helppet_recordings.service.queries import without_transcript
from helppet_recordings.service.staging import (
    completed_attributes,
    expire_upload,
    verified_and_moved,
)
from helppet_recordings.service.verification import (
    one_checksum,
)
from helppet_recordings.status import RecordingStatus

__all__ = [
    "complete_upload",
    "delete_recording",
    "initiate_upload",
    "renew_upload",
    "ticket_response",
]


def initiate_upload(
    ctx: ServiceContext,
    user_id: uuid.UUID | str,
    request: InitiateUploadRequest | Mapping[str, Any],
) -> InitiateUploadResponse:
    """Create an ``uploading`` recording and return a signed upload ticket for it."""
    owner = inputs.user_id(user_id)
    req = inputs.parse(InitiateUploadRequest, request)
    mime_type, audio = policy.resolve_audio_type(req.content_type)
    policy.check_extension_matches(req.filename, audio)
    if ctx.authorize_context is not None and not ctx.authorize_context(
        owner, req.appointment_id, req.visit_id
    ):
        raise PermissionDeniedError(
            appointment_id=None if req.appointment_id is None else str(req.appointment_id),
            visit_id=None if req.visit_id is None else str(req.visit_id),
        )
    if req.idempotency_key is not None:
        existing = ctx.repository.find_by_idempotency_key(owner, req.idempotency_key)
        if existing is not None:
            return _repeat_initiate(ctx, existing, req, mime_type)

    now = ctx.now()
    settings = ctx.settings
    key = build_key(
        prefix=settings.s3_recordings_prefix,
        user_id=owner,
        appointment_id=req.appointment_id,
        visit_id=req.visit_id,
        extension=audio.extension,
        created_at=now,
    )
    # The ticket names a staging key; completion moves the verified bytes to ``key``,
    # which no ticket ever names, so a replayed ticket cannot change verified audio.
    upload_key = settings.s3_staging_prefix + key.removeprefix(settings.s3_recordings_prefix)
    ticket = _sign_upload(ctx, upload_key, mime_type)
    recording = Recording(
        id=uuid.uuid4(),
        recorded_by_user_id=owner,
        appointment_id=req.appointment_id,
        visit_id=req.visit_id,
        recording_type=req.recording_type,
        status=RecordingStatus.UPLOADING,
        filename=key.rsplit("/", 1)[-1],
        original_filename=req.filename,
        mime_type=mime_type,
        s3_bucket=ticket.bucket,
        s3_key=key,
        upload_key=upload_key,
        s3_url=ctx.storage.object_url(key),
        upload_expires_at=_upload_deadline(ctx, now),
        idempotency_key=req.idempotency_key,
        content_md5=req.content_md5,
        content_sha256=req.content_sha256,
        created_at=now,
        updated_at=now,
    )
    try:
        ctx.create(
            recording, {"mime_type": mime_type, "recording_type": recording.recording_type.value}
        )
    except DuplicateRecordingError:
        # Only a concurrent initiate with the same idempotency key can collide
        # (keys carry 64 random bits); that request won, so answer as it did.
        if req.idempotency_key is None:
            raise
        existing = ctx.repository.find_by_idempotency_key(owner, req.idempotency_key)
        if existing is None:
            raise
        return _repeat_initiate(ctx, existing, req, mime_type)
    return ticket_response(recording, ticket)


def renew_upload(
    ctx: ServiceContext, user_id: uuid.UUID | str, recording_id: uuid.UUID | str
) -> InitiateUploadResponse:
    """Return a fresh ticket for an ``uploading`` recording; its deadline moves forward."""
    owner = inputs.user_id(user_id)
    return _renew(ctx, inputs.recording_id(recording_id), owner=owner)


def complete_upload(
    ctx: ServiceContext,
    user_id: uuid.UUID | str,
    recording_id: uuid.UUID | str,
    request: CompleteUploadRequest | Mapping[str, Any],
) -> RecordingResponse:
    """Verify the stored object and mark the recording ``uploaded`` (idempotent)."""
    owner = inputs.user_id(user_id)
    rid = inputs.recording_id(recording_id)
    req = inputs.parse(CompleteUploadRequest, request)
    policy.check_file_size(req.file_size_bytes, max_size=ctx.settings.max_file_size)

    def verify(recording: Recording, now: dt.datetime) -> Change | None:
        if recording.status is not RecordingStatus.UPLOADING:
            return None  # answered below: a repeated completion
        expected = recording.copy(
            content_md5=one_checksum("content_md5", recording.content_md5, req.content_md5),
            content_sha256=one_checksum(
                "content_sha256", recording.content_sha256, req.content_sha256
            ),
        )
        try:
            uploaded = verified_and_moved(
                ctx,
                expected,
                now,
                declared_size=req.file_size_bytes,
                duration_seconds=req.duration_seconds,
                metadata=req.recording_metadata,
            )
        except RecordingError as exc:
            if isinstance(exc, UnavailableError):
                raise  # an outage says nothing about the upload
            _rejected(ctx, recording, exc, now, owner)
            raise
        return Change(uploaded, events.UPLOAD_COMPLETED, completed_attributes(uploaded, "client"))

    settled = ctx.change(rid, verify, owner=owner).recording
    if settled.status is RecordingStatus.FAILED:
        raise InvalidStatusTransitionError(
            "A failed recording cannot be completed; start a new upload",
            recording_id=str(settled.id),
            current_status=settled.status.value,
            requested_status=RecordingStatus.UPLOADED.value,
        )
    if settled.file_size_bytes != req.file_size_bytes:
        raise UploadSizeMismatchError(
            "The recording was already completed with another size",
            recording_id=str(settled.id),
            declared_size=req.file_size_bytes,
            stored_size=settled.file_size_bytes,
            current_status=settled.status.value,
        )
    # A repeated completion may meet a transcribed recording: transcripts are read (and
    # audited) through get_recording only.
    return without_transcript(settled)


def ticket_response(recording: Recording, ticket: UploadTicket) -> InitiateUploadResponse:
    """Build the wire answer to an initiate or a renewal."""
    return InitiateUploadResponse(
        recording_id=recording.id,
        upload_url=ticket.url,
        upload_fields=dict(ticket.fields),
        s3_key=recording.s3_key,
        bucket=ticket.bucket,
        expires_in=ticket.expires_in,
        max_file_size=ticket.max_size,
    )


def _rejected(
    ctx: ServiceContext,
    recording: Recording,
    cause: RecordingError,
    now: dt.datetime,
    owner: uuid.UUID,
) -> None:
    """After a refused completion: report it, and fail the recording if its deadline passed.

    Raises ``UPLOAD_TIMEOUT`` when nothing arrived in time; for other causes
    the caller re-raises the cause, whose details then say ``status: failed``.
    """
    ctx.emit(
        events.UPLOAD_REJECTED,
        recording,
        owner,
        at=now,
        attributes={"error_code": cause.error_code},
    )
    deadline = recording.upload_expires_at
    if deadline is None or now <= deadline:
        return
    if not expire_upload(ctx, recording, cause.message, now):
        return  # someone else settled it first; report the original cause
    cause.details["current_status"] = RecordingStatus.FAILED.value
    if isinstance(cause, UploadNotFoundError):
        raise UploadTimeoutError(
            "The upload deadline passed without a file; start a new upload",
            deadline=deadline.isoformat(),
            **cause.details,
        ) from cause


def _upload_deadline(ctx: ServiceContext, now: dt.datetime) -> dt.datetime:
    settings = ctx.settings
    return now + dt.timedelta(
        seconds=settings.s3_presigned_url_expiration + settings.upload_grace_seconds
    )


def _sign_upload(ctx: ServiceContext, key: str, mime_type: str) -> UploadTicket:
    return ctx.storage.create_upload(
        key=key,
        content_type=mime_type,
        max_size=ctx.settings.max_file_size,
        expires_in=ctx.settings.s3_presigned_url_expiration,
    )


def _repeat_initiate(
    ctx: ServiceContext, existing: Recording, req: InitiateUploadRequest, mime_type: str
) -> InitiateUploadResponse:
    """Answer a repeated initiate: the same recording, a fresh ticket."""
    same_request = (
        not existing.is_deleted
        and existing.original_filename == req.filename
        and existing.mime_type == mime_type
        and existing.appointment_id == req.appointment_id
        and existing.visit_id == req.visit_id
        and existing.recording_type == req.recording_type
    )
    if not same_request:
        raise IdempotencyConflictError(idempotency_key=req.idempotency_key)
    return _renew(ctx, existing.id, loaded=existing)


def _renew(
    ctx: ServiceContext,
    rid: uuid.UUID,
    *,
    owner: uuid.UUID | None = None,
    loaded: Recording | None = None,
) -> InitiateUploadResponse:
    """Sign a new ticket and push the deadline (no event: the status does not change)."""
    tickets: list[UploadTicket] = []

    def renew(recording: Recording, now: dt.datetime) -> Change | None:
        renewed = recording.renew(now, upload_expires_at=_upload_deadline(ctx, now))
        key = recording.upload_key or recording.s3_key
        tickets.append(_sign_upload(ctx, key, recording.mime_type or ""))
        return Change(renewed, None)

    renewed = ctx.change(rid, renew, owner=owner, loaded=loaded).recording
    return ticket_response(renewed, tickets[-1])


def delete_recording(
    ctx: ServiceContext, user_id: uuid.UUID | str, recording_id: uuid.UUID | str
) -> None:
    """Soft-delete one of the caller's recordings; the audio stays until purged."""
    owner = inputs.user_id(user_id)

    def delete(recording: Recording, now: dt.datetime) -> Change:
        return Change(recording.soft_delete(now, by=owner), events.RECORDING_DELETED)

    ctx.change(inputs.recording_id(recording_id), delete, owner=owner)
