"""Resumable (multipart) uploads: start one, sign the parts still missing, assemble the parts.

The multipart upload is created at the recording's final key (``s3_key``).
Part URLs name an upload id, and storage takes no part for an upload it has
assembled or aborted, so no part URL a client still holds can change audio
once it is verified (``docs/security.md``). Completion assembles the object
from the parts storage lists (never from ETags a client reports), then
verifies it as a POST upload is verified (``service/uploads.py``).
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from helppet_recordings import policy
from helppet_recordings.errors import (
    DuplicateRecordingError,
    IdempotencyConflictError,
    RecordingError,
    StorageError,
    UploadIncompleteError,
    UploadKindError,
    ValidationError,
)
from helppet_recordings.models import Recording, StoredPart
from helppet_recordings.multipart import PartPlan, plan_parts
from helppet_recordings.ports import MultipartStorage
from helppet_recordings.schemas import (
    InitiateMultipartUploadRequest,
    MultipartUploadResponse,
    PartUploadUrl,
    SignUploadPartsRequest,
    UploadedPart,
)
from helppet_recordings.service import inputs
from helppet_recordings.service.admission import (
    admit,
    new_recording,
    same_request,
    upload_deadline,
)
from helppet_recordings.service.changes import Change, ServiceContext

__all__ = [
    "assemble",
    "initiate_multipart_upload",
    "multipart_storage",
    "sign_upload_parts",
]

_logger = logging.getLogger("helppet_recordings.uploads")

_GONE = frozenset({"NoSuchUpload", "404"})
"""``storage_error`` values meaning storage does not know the upload id (assembled or aborted)."""


def initiate_multipart_upload(
    ctx: ServiceContext,
    user_id: uuid.UUID | str,
    request: InitiateMultipartUploadRequest | Mapping[str, Any],
) -> MultipartUploadResponse:
    """Create an ``uploading`` recording with a multipart upload; return a URL for every part."""
    owner = inputs.user_id(user_id)
    req = inputs.parse(InitiateMultipartUploadRequest, request)
    storage = multipart_storage(ctx)
    mime_type, extension = admit(ctx, owner, req)
    size = _declared_size(ctx, req.file_size_bytes)
    if req.idempotency_key is not None:
        existing = ctx.repository.find_by_idempotency_key(owner, req.idempotency_key)
        if existing is not None:
            return _repeat_initiate(ctx, owner, existing, req, mime_type)

    plan = plan_parts(size)
    recording = new_recording(
        ctx,
        owner,
        req,
        mime_type=mime_type,
        extension=extension,
        bucket=ctx.storage.bucket,
        now=ctx.now(),
    )
    upload_id = storage.create_multipart_upload(key=recording.s3_key, content_type=mime_type)
    recording = recording.copy(
        multipart_upload_id=upload_id,
        multipart_part_size=plan.part_size,
        multipart_size_bytes=size,
    )
    try:
        ctx.create(
            recording,
            {
                "mime_type": mime_type,
                "recording_type": recording.recording_type.value,
                "upload_kind": "multipart",
            },
        )
    except BaseException as exc:
        _abort_quietly(storage, recording.s3_key, upload_id)
        if not isinstance(exc, DuplicateRecordingError) or req.idempotency_key is None:
            raise
        # A concurrent initiate with the same idempotency key won: answer as it did.
        existing = ctx.repository.find_by_idempotency_key(owner, req.idempotency_key)
        if existing is None:
            raise
        return _repeat_initiate(ctx, owner, existing, req, mime_type)
    return _answer(ctx, storage, recording, plan, held=[], wanted=None)


def sign_upload_parts(
    ctx: ServiceContext,
    user_id: uuid.UUID | str,
    recording_id: uuid.UUID | str,
    *,
    part_numbers: Sequence[int] | None = None,
) -> MultipartUploadResponse:
    """Sign fresh URLs for the parts still missing (or ``part_numbers``); the deadline moves on.

    When storage no longer knows the upload (a bucket rule aborted it, or an
    assembled object was refused and removed), a new multipart upload is
    started and every part is to be sent again.
    """
    owner = inputs.user_id(user_id)
    rid = inputs.recording_id(recording_id)
    wanted = inputs.parse(SignUploadPartsRequest, {"part_numbers": part_numbers}).part_numbers
    storage = multipart_storage(ctx)
    answers: list[MultipartUploadResponse] = []
    started: list[
        tuple[str, str]
    ] = []  # (key, upload id) this call started; a lost write's is unused

    def renew(recording: Recording, now: dt.datetime) -> Change | None:
        plan = _plan(recording)
        renewed = recording.renew(now, upload_expires_at=upload_deadline(ctx, now))
        if wanted is not None:
            _check_numbers(recording, plan, wanted)
        upload_id = _upload_id(recording)
        held = _held_or_none(storage, recording.s3_key, upload_id)
        if held is None:
            if _assembled_object_waits(ctx, recording):
                answers.append(_answer(ctx, storage, recording, plan, held=None, wanted=[]))
                return Change(renewed, None)
            upload_id = storage.create_multipart_upload(
                key=recording.s3_key, content_type=recording.mime_type or ""
            )
            started.append((recording.s3_key, upload_id))
            renewed = renewed.copy(multipart_upload_id=upload_id)
            held = []
        answers.append(_answer(ctx, storage, renewed, plan, held=held, wanted=wanted))
        return Change(renewed, None)

    kept: str | None = None
    try:
        kept = ctx.change(rid, renew, owner=owner).recording.multipart_upload_id
    finally:
        for key, upload_id in started:
            if upload_id != kept:
                _abort_quietly(storage, key, upload_id)
    return answers[-1]


def assemble(ctx: ServiceContext, recording: Recording) -> bool:
    """Assemble a multipart upload's object at ``s3_key`` from the parts storage holds.

    Nothing happens for a POST upload, or when storage no longer knows the
    upload (assembled before or meanwhile, or aborted): what is stored at
    ``s3_key`` then decides. Returns False in that last case (another party
    may still be assembling it), True otherwise. Raises ``UPLOAD_INCOMPLETE``
    (``details.missing_parts``) when a planned part is missing or has
    another size; the upload stays open.
    """
    if recording.multipart_upload_id is None:
        return True
    storage = multipart_storage(ctx)
    held = _held_or_none(storage, recording.s3_key, recording.multipart_upload_id)
    if held is None:
        return False
    plan = _plan(recording)
    missing = _missing(plan, held)
    if missing:
        raise UploadIncompleteError(
            recording_id=str(recording.id),
            missing_parts=missing,
            part_count=len(plan.parts),
        )
    planned = {part.part_number for part in plan.parts}
    try:
        storage.complete_multipart_upload(
            key=recording.s3_key,
            upload_id=recording.multipart_upload_id,
            parts=[(part.part_number, part.etag) for part in held if part.part_number in planned],
        )
    except StorageError as exc:
        if exc.details.get("storage_error") not in _GONE:
            raise
        # Assembled (or aborted) since the parts were listed: a completion and the sweeper
        # raced. As when storage no longer knows the upload, what is at s3_key decides.
        return False
    return True


def multipart_storage(ctx: ServiceContext) -> MultipartStorage:
    """Return the storage as a ``MultipartStorage``; ``VALIDATION_ERROR`` if it takes no parts."""
    storage = ctx.storage
    if not isinstance(storage, MultipartStorage):
        raise ValidationError(
            "This storage backend does not take multipart uploads; use initiate_upload",
            storage=type(storage).__name__,
        )
    return storage


def _declared_size(ctx: ServiceContext, size: int) -> int:
    if size < 1:
        raise ValidationError(
            "A multipart upload has at least 1 byte",
            errors=[{"field": "file_size_bytes", "message": "must be at least 1"}],
        )
    policy.check_file_size(size, max_size=ctx.settings.max_file_size)
    return size


def _repeat_initiate(
    ctx: ServiceContext,
    owner: uuid.UUID,
    existing: Recording,
    req: InitiateMultipartUploadRequest,
    mime_type: str,
) -> MultipartUploadResponse:
    """Answer a repeated initiate: the same recording, fresh part URLs for what is missing."""
    if (
        not same_request(existing, req, mime_type)
        or existing.multipart_size_bytes != req.file_size_bytes
    ):
        raise IdempotencyConflictError(idempotency_key=req.idempotency_key)
    return sign_upload_parts(ctx, owner, existing.id)


def _plan(recording: Recording) -> PartPlan:
    if recording.multipart_size_bytes is None or recording.multipart_part_size is None:
        raise UploadKindError(
            "This recording was started as a single POST upload; use renew_upload",
            recording_id=str(recording.id),
        )
    return PartPlan.cut(recording.multipart_size_bytes, recording.multipart_part_size)


def _upload_id(recording: Recording) -> str:
    # Cleared by a verification (then the recording is no longer uploading), or when an
    # assembled object was refused: storage forgot the upload, and a new one is started.
    return recording.multipart_upload_id or ""


def _check_numbers(recording: Recording, plan: PartPlan, wanted: Sequence[int]) -> None:
    unknown = sorted({number for number in wanted if number > len(plan.parts)})
    if unknown:
        raise ValidationError(
            f"The upload has {len(plan.parts)} parts",
            recording_id=str(recording.id),
            errors=[{"field": "part_numbers", "message": f"no such parts: {unknown[:20]}"}],
        )


def _held_or_none(storage: MultipartStorage, key: str, upload_id: str) -> list[StoredPart] | None:
    """Return the parts storage holds, or None when it does not know the upload."""
    if not upload_id:
        return None
    try:
        return storage.list_parts(key=key, upload_id=upload_id)
    except StorageError as exc:
        if exc.details.get("storage_error") in _GONE:
            return None
        raise


def _missing(plan: PartPlan, held: Sequence[StoredPart]) -> list[int]:
    """Planned part numbers storage lacks, or holds with another size."""
    sizes = {part.part_number: part.size for part in held}
    return [part.part_number for part in plan.parts if sizes.get(part.part_number) != part.size]


def _assembled_object_waits(ctx: ServiceContext, recording: Recording) -> bool:
    """Whether an assembled object of the declared size waits at ``s3_key`` for completion."""
    stored = ctx.storage.head(recording.s3_key)
    return stored is not None and stored.size == recording.multipart_size_bytes


def _answer(
    ctx: ServiceContext,
    storage: MultipartStorage,
    recording: Recording,
    plan: PartPlan,
    *,
    held: Sequence[StoredPart] | None,
    wanted: Sequence[int] | None,
) -> MultipartUploadResponse:
    """Build the wire answer; ``held`` None means the object is assembled (nothing to send)."""
    expires_in = ctx.settings.s3_presigned_url_expiration
    if held is None:
        uploaded = [UploadedPart(part_number=p.part_number, size=p.size) for p in plan.parts]
        numbers: Sequence[int] = []
    else:
        uploaded = [
            UploadedPart(part_number=p.part_number, size=p.size, etag=p.etag.strip('"'))
            for p in held
        ]
        numbers = _missing(plan, held) if wanted is None else sorted(set(wanted))
    upload_id = recording.multipart_upload_id or ""
    parts = [
        PartUploadUrl(
            part_number=number,
            url=storage.sign_upload_part(
                key=recording.s3_key,
                upload_id=upload_id,
                part_number=number,
                size=plan.part(number).size,
                expires_in=expires_in,
            ),
            size=plan.part(number).size,
            expires_in=expires_in,
        )
        for number in numbers
    ]
    return MultipartUploadResponse(
        recording_id=recording.id,
        s3_key=recording.s3_key,
        bucket=recording.s3_bucket,
        part_size=plan.part_size,
        parts=parts,
        uploaded_parts=uploaded,
        expires_in=expires_in,
        max_file_size=ctx.settings.max_file_size,
    )


def _abort_quietly(storage: MultipartStorage, key: str, upload_id: str) -> None:
    try:
        storage.abort_multipart_upload(key=key, upload_id=upload_id)
    except RecordingError:
        _logger.warning("Could not abort a multipart upload no recording uses")
