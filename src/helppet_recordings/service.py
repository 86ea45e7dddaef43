"""RecordingService: the recording life cycle over a storage port and a repository port.

The service knows no framework, no SQL and no S3. It validates input, names
keys, asks storage for signed tickets and for what it holds, and moves
recordings through the transition table with compare-and-set writes.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import uuid
from collections.abc import Callable, Mapping
from typing import Any, Final, TypeVar

import pydantic

from helppet_recordings import policy
from helppet_recordings.errors import (
    FileTooLargeError,
    InvalidStatusTransitionError,
    PermissionDeniedError,
    RecordingError,
    RecordingNotFoundError,
    UploadNotFoundError,
    UploadSizeMismatchError,
    UploadTimeoutError,
    UploadVerificationError,
    ValidationError,
)
from helppet_recordings.keys import build_key
from helppet_recordings.models import Recording, RecordingFilter, StoredObject
from helppet_recordings.ports import RecordingRepository, RecordingStorage
from helppet_recordings.schemas import (
    CompleteUploadRequest,
    DownloadUrlResponse,
    InitiateUploadRequest,
    InitiateUploadResponse,
    RecordingListResponse,
    RecordingResponse,
)
from helppet_recordings.settings import RecordingSettings
from helppet_recordings.status import RecordingStatus, check_transition

__all__ = ["AuthorizeContext", "Clock", "RecordingService"]

AuthorizeContext = Callable[[uuid.UUID, uuid.UUID | None, uuid.UUID | None], bool]
"""``authorize_context(user_id, appointment_id, visit_id)``: may this user record here?"""

Clock = Callable[[], dt.datetime]
"""Returns the current time, timezone-aware."""

_Model = TypeVar("_Model", bound=pydantic.BaseModel)

_SAVE_ATTEMPTS: Final = (
    8  # a save loses only to a concurrent status change; a few retries settle it
)
_REQUIRED_ENCRYPTION: Final = "AES256"
_MAX_ERROR_LENGTH: Final = 10_000
_LANGUAGE_TAG = re.compile(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8}){0,2}")
_DOWNLOADABLE: Final = frozenset(
    {RecordingStatus.UPLOADED, RecordingStatus.PROCESSING, RecordingStatus.TRANSCRIBED}
)


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class RecordingService:
    """Runs the recording life cycle: initiate, upload, complete, process, transcribe.

    ``user_id`` arguments are the authenticated caller; another user's
    recording is reported as ``RECORDING_NOT_FOUND`` so ids cannot be probed.
    Ids may be ``uuid.UUID`` or their string form; requests may be the
    pydantic model or a plain mapping.
    """

    def __init__(
        self,
        storage: RecordingStorage,
        repository: RecordingRepository,
        settings: RecordingSettings | None = None,
        authorize_context: AuthorizeContext | None = None,
        *,
        clock: Clock = _utc_now,
    ) -> None:
        self._storage = storage
        self._repository = repository
        self._settings = settings if settings is not None else RecordingSettings()
        self._authorize_context = authorize_context
        self._clock = clock

    @property
    def settings(self) -> RecordingSettings:
        """The settings this service runs with."""
        return self._settings

    # ----------------------------------------------------------------- user operations

    def initiate_upload(
        self, user_id: uuid.UUID | str, request: InitiateUploadRequest | Mapping[str, Any]
    ) -> InitiateUploadResponse:
        """Create an ``uploading`` recording and return a signed upload ticket for it.

        Raises ``VALIDATION_ERROR``, ``UNSUPPORTED_CONTENT_TYPE``,
        ``PERMISSION_DENIED`` or ``STORAGE_UNAVAILABLE``; on any error no
        recording is created.
        """
        owner = _user_id(user_id)
        req = _parse(InitiateUploadRequest, request)
        mime_type, audio = policy.resolve_audio_type(req.content_type)
        policy.check_extension_matches(req.filename, audio)
        if self._authorize_context is not None and not self._authorize_context(
            owner, req.appointment_id, req.visit_id
        ):
            raise PermissionDeniedError(
                appointment_id=_str_or_none(req.appointment_id),
                visit_id=_str_or_none(req.visit_id),
            )

        now = self._now()
        settings = self._settings
        key = build_key(
            prefix=settings.s3_recordings_prefix,
            user_id=owner,
            appointment_id=req.appointment_id,
            visit_id=req.visit_id,
            extension=audio.extension,
            created_at=now,
        )
        expires_in = settings.s3_presigned_url_expiration
        ticket = self._storage.create_upload(
            key=key, content_type=mime_type, max_size=settings.max_file_size, expires_in=expires_in
        )
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
            s3_url=self._storage.object_url(key),
            upload_expires_at=now
            + dt.timedelta(seconds=expires_in + settings.upload_grace_seconds),
            created_at=now,
            updated_at=now,
        )
        self._repository.add(recording)
        return InitiateUploadResponse(
            recording_id=recording.id,
            upload_url=ticket.url,
            upload_fields=dict(ticket.fields),
            s3_key=key,
            bucket=ticket.bucket,
            expires_in=ticket.expires_in,
            max_file_size=ticket.max_size,
        )

    def complete_upload(
        self,
        user_id: uuid.UUID | str,
        recording_id: uuid.UUID | str,
        request: CompleteUploadRequest | Mapping[str, Any],
    ) -> RecordingResponse:
        """Verify the stored object and mark the recording ``uploaded``.

        The object must exist, have the declared size (at most the maximum),
        the signed content type and, where storage reports it, AES256
        encryption. A failed check leaves the recording ``uploading`` so the
        client can upload again, unless the upload deadline has passed: then
        the recording becomes ``failed`` (``UPLOAD_TIMEOUT`` when nothing
        arrived). Repeating a successful completion with the same size
        returns the recording unchanged.
        """
        owner = _user_id(user_id)
        rid = _recording_id(recording_id)
        req = _parse(CompleteUploadRequest, request)
        policy.check_file_size(req.file_size_bytes, max_size=self._settings.max_file_size)

        for _ in range(_SAVE_ATTEMPTS):
            recording = self._owned(owner, rid)
            if recording.status is not RecordingStatus.UPLOADING:
                return self._repeated_completion(recording, req)
            stored = self._storage.head(recording.s3_key)
            now = self._now()
            try:
                self._verify_upload(recording, stored, declared_size=req.file_size_bytes)
            except RecordingError as exc:
                self._fail_if_past_deadline(recording, exc, now)
                raise
            assert stored is not None  # noqa: S101 - _verify_upload raised otherwise
            uploaded = _moved(
                recording,
                RecordingStatus.UPLOADED,
                now,
                file_size_bytes=stored.size,
                duration_seconds=req.duration_seconds,
                recording_metadata=req.recording_metadata,
            )
            if self._repository.save(uploaded, expected_status=RecordingStatus.UPLOADING):
                return RecordingResponse.from_recording(uploaded)
        raise _contended(rid)

    def list_recordings(
        self,
        user_id: uuid.UUID | str,
        *,
        appointment_id: uuid.UUID | str | None = None,
        visit_id: uuid.UUID | str | None = None,
        status: RecordingStatus | str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> RecordingListResponse:
        """Return the caller's live recordings, newest first, optionally narrowed.

        ``limit`` is 1 to ``settings.list_max_limit``; ``total`` counts every
        recording matching the same filters.
        """
        recording_filter = RecordingFilter(
            user_id=_user_id(user_id),
            appointment_id=_optional_uuid(appointment_id, "appointment_id"),
            visit_id=_optional_uuid(visit_id, "visit_id"),
            status=_optional_status(status),
        )
        max_limit = self._settings.list_max_limit
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= max_limit:
            raise ValidationError.for_field("limit", f"must be an integer from 1 to {max_limit}")
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise ValidationError.for_field("offset", "must be an integer of at least 0")
        page = self._repository.find(recording_filter, limit=limit, offset=offset)
        return RecordingListResponse(
            items=[RecordingResponse.from_recording(r) for r in page.items],
            total=page.total,
            limit=limit,
            offset=offset,
        )

    def get_recording(
        self, user_id: uuid.UUID | str, recording_id: uuid.UUID | str
    ) -> RecordingResponse:
        """Return one of the caller's recordings."""
        return RecordingResponse.from_recording(
            self._owned(_user_id(user_id), _recording_id(recording_id))
        )

    def get_download_url(
        self, user_id: uuid.UUID | str, recording_id: uuid.UUID | str
    ) -> DownloadUrlResponse:
        """Return a signed, expiring URL to the recording's audio.

        Only a verified upload can be downloaded: ``INVALID_STATUS_TRANSITION``
        while it is still ``uploading`` or when it failed before arriving.
        """
        recording = self._owned(_user_id(user_id), _recording_id(recording_id))
        verified = recording.file_size_bytes is not None
        if recording.status not in _DOWNLOADABLE and not (
            recording.status is RecordingStatus.FAILED and verified
        ):
            raise InvalidStatusTransitionError(
                f"A recording that is {recording.status.value} has no audio to download yet",
                recording_id=str(recording.id),
                current_status=recording.status.value,
            )
        expires_in = self._settings.s3_presigned_url_expiration
        _, audio = policy.resolve_audio_type(recording.mime_type or "")
        url = self._storage.create_download_url(
            key=recording.s3_key,
            expires_in=expires_in,
            content_type=audio.mime_type,
            filename=recording.original_filename or recording.filename,
        )
        return DownloadUrlResponse(download_url=url, expires_in=expires_in)

    def delete_recording(self, user_id: uuid.UUID | str, recording_id: uuid.UUID | str) -> None:
        """Soft-delete one of the caller's recordings; the audio stays until purged."""
        owner = _user_id(user_id)
        rid = _recording_id(recording_id)
        for _ in range(_SAVE_ATTEMPTS):
            recording = self._owned(owner, rid)
            now = self._now()
            deleted = recording.copy(
                is_deleted=True, deleted_at=now, deleted_by_user_id=owner, updated_at=now
            )
            if self._repository.save(deleted, expected_status=recording.status):
                return
        raise _contended(rid)

    # --------------------------------------------------------------- system operations

    def start_processing(self, recording_id: uuid.UUID | str) -> RecordingResponse:
        """Move an ``uploaded`` recording to ``processing`` (a transcription worker took it)."""
        return self._advance(
            _recording_id(recording_id),
            RecordingStatus.PROCESSING,
            lambda _rec, now: {"processing_started_at": now, "processing_error": None},
        )

    def record_transcript(
        self,
        recording_id: uuid.UUID | str,
        *,
        text: str,
        confidence: float | None = None,
        language: str | None = None,
        service: str | None = None,
    ) -> RecordingResponse:
        """Store a transcript and move a ``processing`` recording to ``transcribed``."""
        rid = _recording_id(recording_id)
        if not isinstance(text, str):
            raise ValidationError.for_field("text", "must be a string")
        if confidence is not None and (
            isinstance(confidence, bool)
            or not isinstance(confidence, int | float)
            or not math.isfinite(confidence)
            or not 0 <= confidence <= 1
        ):
            raise ValidationError.for_field("confidence", "must be a number from 0 to 1")
        if language is not None and (
            not isinstance(language, str)
            or len(language) > 10
            or not _LANGUAGE_TAG.fullmatch(language)
        ):
            raise ValidationError.for_field("language", "must be a language tag such as 'en-US'")
        if service is not None and (not isinstance(service, str) or not 1 <= len(service) <= 50):
            raise ValidationError.for_field("service", "must be 1 to 50 characters")
        return self._advance(
            rid,
            RecordingStatus.TRANSCRIBED,
            lambda _rec, now: {
                "transcript_text": text,
                "transcript_confidence": None if confidence is None else float(confidence),
                "transcript_language": language,
                "transcription_service": service,
                "processing_completed_at": now,
            },
        )

    def mark_failed(self, recording_id: uuid.UUID | str, *, error: str) -> RecordingResponse:
        """Move a recording that is not final to ``failed``, keeping ``error`` as the reason."""
        rid = _recording_id(recording_id)
        if not isinstance(error, str) or not error.strip():
            raise ValidationError.for_field("error", "must be a non-empty description")
        reason = error if len(error) <= _MAX_ERROR_LENGTH else error[: _MAX_ERROR_LENGTH - 1] + "…"
        return self._advance(
            rid,
            RecordingStatus.FAILED,
            lambda rec, now: {
                "processing_error": reason,
                "processing_completed_at": (
                    now if rec.status is RecordingStatus.PROCESSING else rec.processing_completed_at
                ),
            },
        )

    def expire_stale_uploads(self, *, now: dt.datetime | None = None, batch_size: int = 100) -> int:
        """Settle every ``uploading`` recording whose upload deadline has passed.

        Storage is asked first: an object that did arrive (the client's
        completion call was lost) and passes verification promotes the
        recording to ``uploaded``. The others become ``failed`` with
        ``processing_error`` saying why. Works in batches of ``batch_size``;
        safe to run concurrently (a recording another sweeper settled is
        skipped). Returns how many recordings became ``failed``.
        """
        moment = self._now() if now is None else _aware(now, "now")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValidationError.for_field("batch_size", "must be a positive integer")
        failed = 0
        while batch := self._repository.list_stale_uploads(now=moment, limit=batch_size):
            for recording in batch:
                failed += self._settle_stale_upload(recording, moment)
        return failed

    # -------------------------------------------------------------------------- internals

    def _now(self) -> dt.datetime:
        return _aware(self._clock(), "clock()")

    def _owned(self, owner: uuid.UUID, rid: uuid.UUID) -> Recording:
        recording = self._repository.get(rid)
        if recording is None or recording.is_deleted or not recording.is_owned_by(owner):
            raise RecordingNotFoundError(recording_id=str(rid))
        return recording

    def _live(self, rid: uuid.UUID) -> Recording:
        recording = self._repository.get(rid)
        if recording is None or recording.is_deleted:
            raise RecordingNotFoundError(recording_id=str(rid))
        return recording

    def _advance(
        self,
        rid: uuid.UUID,
        target: RecordingStatus,
        changes: Callable[[Recording, dt.datetime], dict[str, Any]],
    ) -> RecordingResponse:
        for _ in range(_SAVE_ATTEMPTS):
            recording = self._live(rid)
            now = self._now()
            moved = _moved(recording, target, now, **changes(recording, now))
            if self._repository.save(moved, expected_status=recording.status):
                return RecordingResponse.from_recording(moved)
        raise _contended(rid)

    def _repeated_completion(
        self, recording: Recording, req: CompleteUploadRequest
    ) -> RecordingResponse:
        if recording.status is RecordingStatus.FAILED:
            check_transition(recording.status, RecordingStatus.UPLOADED)
        if recording.file_size_bytes != req.file_size_bytes:
            raise UploadSizeMismatchError(
                "The recording was already completed with another size",
                recording_id=str(recording.id),
                declared_size=req.file_size_bytes,
                stored_size=recording.file_size_bytes,
                current_status=recording.status.value,
            )
        return RecordingResponse.from_recording(recording)

    def _verify_upload(
        self, recording: Recording, stored: StoredObject | None, *, declared_size: int | None
    ) -> None:
        """Raise the contract's error unless ``stored`` is the object the ticket allowed."""
        where = {"recording_id": str(recording.id), "s3_key": recording.s3_key}
        if stored is None:
            raise UploadNotFoundError(
                "No uploaded file was found; upload it, then complete again", **where
            )
        if stored.size > self._settings.max_file_size:
            raise FileTooLargeError(
                stored_size=stored.size, max_file_size=self._settings.max_file_size, **where
            )
        if declared_size is not None and stored.size != declared_size:
            raise UploadSizeMismatchError(
                f"Storage holds {stored.size} bytes, not the declared {declared_size}",
                declared_size=declared_size,
                stored_size=stored.size,
                **where,
            )
        stored_type = policy.normalize_content_type(stored.content_type or "")
        if stored_type != recording.mime_type:
            raise UploadVerificationError(
                "The stored file's content type is not the one the upload was signed for",
                expected_content_type=recording.mime_type,
                stored_content_type=stored.content_type,
                **where,
            )
        encryption = stored.server_side_encryption
        if encryption is not None and encryption != _REQUIRED_ENCRYPTION:
            raise UploadVerificationError(
                "The stored file is not encrypted with AES256",
                expected_encryption=_REQUIRED_ENCRYPTION,
                stored_encryption=encryption,
                **where,
            )

    def _fail_if_past_deadline(
        self, recording: Recording, cause: RecordingError, now: dt.datetime
    ) -> None:
        """After a failed verification: fail the recording if its deadline passed.

        Raises ``UPLOAD_TIMEOUT`` when nothing arrived in time; for other
        causes the caller re-raises the cause, whose details now say
        ``status: failed``.
        """
        deadline = recording.upload_expires_at
        if deadline is None or now <= deadline:
            return
        failed = _moved(recording, RecordingStatus.FAILED, now, processing_error=cause.message)
        if not self._repository.save(failed, expected_status=RecordingStatus.UPLOADING):
            return  # someone else settled it first; report the original cause
        cause.details["current_status"] = RecordingStatus.FAILED.value
        if isinstance(cause, UploadNotFoundError):
            raise UploadTimeoutError(
                "The upload deadline passed without a file; start a new upload",
                deadline=deadline.isoformat(),
                **cause.details,
            ) from cause

    def _settle_stale_upload(self, recording: Recording, now: dt.datetime) -> int:
        stored = self._storage.head(recording.s3_key)
        try:
            self._verify_upload(recording, stored, declared_size=None)
        except RecordingError as exc:
            reason = (
                "The upload deadline passed without a file"
                if isinstance(exc, UploadNotFoundError)
                else f"The upload deadline passed and the stored file was refused: {exc.message}"
            )
            failed = _moved(recording, RecordingStatus.FAILED, now, processing_error=reason)
            return int(self._repository.save(failed, expected_status=RecordingStatus.UPLOADING))
        assert stored is not None  # noqa: S101 - _verify_upload raised otherwise
        uploaded = _moved(recording, RecordingStatus.UPLOADED, now, file_size_bytes=stored.size)
        self._repository.save(uploaded, expected_status=RecordingStatus.UPLOADING)
        return 0


# ------------------------------------------------------------------------------- helpers


def _moved(
    recording: Recording, target: RecordingStatus, now: dt.datetime, **changes: Any
) -> Recording:
    """Return ``recording`` moved to ``target``: the one place a status is changed."""
    check_transition(recording.status, target)
    return recording.copy(status=target, updated_at=now, **changes)


def _contended(rid: uuid.UUID) -> InvalidStatusTransitionError:
    return InvalidStatusTransitionError(
        "The recording kept changing underneath this operation; retry",
        recording_id=str(rid),
    )


def _parse(model: type[_Model], value: object) -> _Model:
    if isinstance(value, model):
        return value
    if not isinstance(value, Mapping):
        raise ValidationError(
            f"Expected a {model.__name__} or a JSON object",
            errors=[{"field": "", "message": "must be an object"}],
        )
    try:
        return model.model_validate(value)
    except pydantic.ValidationError as exc:
        raise validation_error_from(exc) from None


def validation_error_from(exc: pydantic.ValidationError) -> ValidationError:
    """Translate a pydantic error into ``VALIDATION_ERROR``, one entry per field problem.

    The offending input is never echoed back: it may be huge or sensitive.
    """
    errors = [
        {
            "field": ".".join(str(part) for part in error["loc"]),
            "message": _pydantic_message(error),
            "type": error["type"],
        }
        for error in exc.errors(include_url=False, include_input=False)
    ]
    fields = ", ".join(sorted({e["field"] or "body" for e in errors}))
    return ValidationError(f"Invalid request: check {fields}", errors=errors)


def _pydantic_message(error: Any) -> str:
    message = str(error["msg"])
    return message.removeprefix("Value error, ")


def _uuid(value: object, field: str) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    if isinstance(value, str) and len(value) <= 64:
        try:
            return uuid.UUID(value)
        except ValueError:
            pass
    raise ValidationError.for_field(field, "must be a UUID")


def _user_id(value: object) -> uuid.UUID:
    user_id = _uuid(value, "user_id")
    if user_id.int == 0:
        raise ValidationError.for_field("user_id", "must not be the nil UUID")
    return user_id


def _recording_id(value: object) -> uuid.UUID:
    return _uuid(value, "recording_id")


def _optional_uuid(value: object, field: str) -> uuid.UUID | None:
    return None if value is None else _uuid(value, field)


def _optional_status(value: object) -> RecordingStatus | None:
    if value is None or isinstance(value, RecordingStatus):
        return value
    if isinstance(value, str) and value in _STATUS_VALUES:
        return RecordingStatus(value)
    raise ValidationError.for_field("status", f"must be one of {', '.join(_STATUS_VALUES)}")


_STATUS_VALUES: Final = tuple(s.value for s in RecordingStatus)


def _aware(value: dt.datetime, name: str) -> dt.datetime:
    if not isinstance(value, dt.datetime) or value.tzinfo is None:
        raise ValidationError.for_field(name, "must be a timezone-aware datetime")
    return value


def _str_or_none(value: uuid.UUID | None) -> str | None:
    return None if value is None else str(value)
