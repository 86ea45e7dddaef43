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
    RecordingError,
    StorageError,
    UnavailableError,
    UploadKindError,
    UploadNotFoundError,
    UploadSizeMismatchError,
    UploadTimeoutError,
)
from helppet_recordings.models import Recording, UploadTicket
from helppet_recordings.schemas import (
    CompleteUploadRequest,
    InitiateUploadRequest,
    InitiateUploadResponse,
    RecordingResponse,
)
from helppet_recordings.service import inputs
from helppet_recordings.service.admission import (
    admit,
    new_recording,
    same_request,
    upload_deadline,
)
from helppet_recordings.service.assembly import (
    assemble_or_wait,
    discard_refused_assembly,
    refuses_bytes,
    upload_state,
)
from helppet_recordings.service.changes import Change, ServiceContext, StaleRecording
from helppet_recordings.service.leftovers import discard_upload
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
from helppet_recordings.storage_capabilities import ChecksumPinning

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
    mime_type, extension = admit(ctx, owner, req)
    if req.idempotency_key is not None:
        existing = ctx.repository.find_by_idempotency_key(owner, req.idempotency_key)
        if existing is not None:
            return _repeat_initiate(ctx, existing, req, mime_type)

    recording = new_recording(
        ctx,
        owner,
        req,
        mime_type=mime_type,
        extension=extension,
        bucket=ctx.storage.bucket,
        now=ctx.now(),
    )
    upload_key = _upload_key(ctx, recording)
    recording = recording.copy(upload_key=upload_key)
    ticket = _sign_upload(ctx, upload_key, mime_type, sha256=_pinned(recording))
    recording = recording.copy(s3_bucket=ticket.bucket)
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
            if recording.multipart_size_bytes is not None:
                _assemble(ctx, recording, req.file_size_bytes)
            uploaded = verified_and_moved(
                ctx,
                expected,
                now,
                declared_size=req.file_size_bytes,
                duration_seconds=req.duration_seconds,
                metadata=req.recording_metadata,
            )
        except RecordingError as exc:
            if isinstance(exc, UnavailableError | StorageError):
                raise  # an outage or a refusal to read says nothing about the upload
            current = ctx.repository.get(recording.id)
            if current is None or upload_state(current) != upload_state(recording):
                # Completed, deleted, expired or restarted while this call verified: the
                # verdict was on a copy that is no longer the upload; judge what is stored now.
                raise StaleRecording from exc
            if recording.multipart_size_bytes is not None and refuses_bytes(exc):
                discard_refused_assembly(ctx, recording)
            _rejected(ctx, current, exc, now, owner)  # its deadline as stored now
            raise
        return Change(uploaded, events.UPLOAD_COMPLETED, completed_attributes(uploaded, "client"))

    settled = ctx.change(rid, verify, owner=owner).recording
    if settled.upload_timed_out:
        # The answer the call that failed it gave (or would have, had the sweeper not been
        # first), so that a retried completion is told the same.
        raise _timed_out(settled)
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


def _assemble(ctx: ServiceContext, recording: Recording, declared_size: int) -> None:
    """Assemble a multipart upload's parts, after checking the size the client declares now."""
    if declared_size != recording.multipart_size_bytes:
        raise UploadSizeMismatchError(
            "The upload was started with another size",
            recording_id=str(recording.id),
            declared_size=declared_size,
            stored_size=recording.multipart_size_bytes,
        )
    assemble_or_wait(ctx, recording)  # or another completion's assembly, waited for


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
    discard_upload(ctx, recording)
    cause.details["current_status"] = RecordingStatus.FAILED.value
    if isinstance(cause, UploadNotFoundError):
        raise _timed_out(recording) from cause


def _timed_out(recording: Recording) -> UploadTimeoutError:
    """Return ``UPLOAD_TIMEOUT`` for a recording its upload deadline failed."""
    deadline = recording.upload_expires_at
    return UploadTimeoutError(
        "The upload deadline passed without a valid file; start a new upload",
        deadline=None if deadline is None else deadline.isoformat(),
        recording_id=str(recording.id),
        s3_key=recording.s3_key,
        current_status=RecordingStatus.FAILED.value,
    )


def _upload_key(ctx: ServiceContext, recording: Recording) -> str:
    """Return the key a new recording's tickets name; none may ever change verified audio.

    ``s3_key`` itself when the client declared the file's SHA-256 and storage
    pins it in the ticket (every use of the ticket can then only write those
    same bytes, and completion needs no copy); otherwise a staging key, from
    which completion moves the verified bytes to ``s3_key``, which no ticket
    names.
    """
    storage = ctx.storage
    if (
        recording.content_sha256 is not None
        and isinstance(storage, ChecksumPinning)
        and storage.pins_checksums
    ):
        return recording.s3_key
    settings = ctx.settings
    return settings.s3_staging_prefix + recording.s3_key.removeprefix(settings.s3_recordings_prefix)


def _pinned(recording: Recording) -> str | None:
    """Return the SHA-256 its tickets pin: the declared one where they name ``s3_key``."""
    return recording.content_sha256 if recording.uploads_in_place else None


def _sign_upload(
    ctx: ServiceContext, key: str, mime_type: str, *, sha256: str | None = None
) -> UploadTicket:
    """Sign a ticket for ``key``; with ``sha256``, one that pins it (or none at all)."""
    storage = ctx.storage
    settings = ctx.settings
    if sha256 is not None:
        if not isinstance(storage, ChecksumPinning) or not storage.pins_checksums:
            # The storage changed since initiate (or stopped trusting the server's checksum
            # check): a ticket for the final key it cannot pin could overwrite verified audio.
            raise UploadKindError(
                "This upload's tickets pin its checksum and this storage cannot; start a new upload"
            )
        return storage.create_upload(
            key=key,
            content_type=mime_type,
            max_size=settings.max_file_size,
            expires_in=settings.s3_presigned_url_expiration,
            sha256=sha256,
        )
    return storage.create_upload(
        key=key,
        content_type=mime_type,
        max_size=settings.max_file_size,
        expires_in=settings.s3_presigned_url_expiration,
    )


def _repeat_initiate(
    ctx: ServiceContext, existing: Recording, req: InitiateUploadRequest, mime_type: str
) -> InitiateUploadResponse:
    """Answer a repeated initiate: the same recording, a fresh ticket."""
    if not same_request(existing, req, mime_type) or existing.multipart_size_bytes is not None:
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
        if recording.multipart_size_bytes is not None and not recording.is_deleted:
            raise UploadKindError(
                "A resumable upload is renewed by signing its parts again",
                recording_id=str(recording.id),
            )
        renewed = recording.renew(now, upload_expires_at=upload_deadline(ctx, now))
        key = recording.upload_key or recording.s3_key
        tickets.append(_sign_upload(ctx, key, recording.mime_type or "", sha256=_pinned(recording)))
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

    deleted = ctx.change(inputs.recording_id(recording_id), delete, owner=owner).recording
    if deleted.status is RecordingStatus.UPLOADING:
        discard_upload(ctx, deleted)  # an unfinished multipart upload is billed until aborted
