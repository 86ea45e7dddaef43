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
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Final, TypeVar

import pydantic

from helppet_recordings import policy
from helppet_recordings.errors import (
    FileTooLargeError,
    IdempotencyConflictError,
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
from helppet_recordings.models import (
    ReconcileReport,
    Recording,
    RecordingFilter,
    StoredObject,
    UploadTicket,
)
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
_MAX_OFFSET: Final = 2**31 - 1  # beyond any real listing, and within every database's integers
_LANGUAGE_TAG = re.compile(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8}){0,2}")


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

        With an ``idempotency_key``, repeating the same request (a phone
        retrying after a lost answer) returns the same recording with a fresh
        ticket instead of creating another; reusing the key for a different
        request is ``IDEMPOTENCY_CONFLICT``.

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
        if req.idempotency_key is not None:
            existing = self._repository.find_by_idempotency_key(owner, req.idempotency_key)
            if existing is not None:
                return self._repeat_initiate(existing, req, mime_type)

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
        ticket = self._sign_upload(key, mime_type)
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
            upload_expires_at=self._upload_deadline(now),
            idempotency_key=req.idempotency_key,
            content_md5=req.content_md5,
            content_sha256=req.content_sha256,
            created_at=now,
            updated_at=now,
        )
        try:
            self._repository.add(recording)
        except ValueError:
            # Only a concurrent initiate with the same idempotency key can collide
            # (keys carry 64 random bits); that request won, so answer as it did.
            if req.idempotency_key is None:
                raise
            existing = self._repository.find_by_idempotency_key(owner, req.idempotency_key)
            if existing is None:
                raise
            return self._repeat_initiate(existing, req, mime_type)
        return _ticket_response(recording, ticket)

    def renew_upload(
        self, user_id: uuid.UUID | str, recording_id: uuid.UUID | str
    ) -> InitiateUploadResponse:
        """Return a fresh upload ticket for an ``uploading`` recording whose URL expired.

        The upload deadline moves forward with the new ticket. The key, the
        content type and the size limit stay those of the recording.
        """
        owner = _user_id(user_id)
        rid = _recording_id(recording_id)
        for _ in range(_SAVE_ATTEMPTS):
            recording = self._owned(owner, rid)
            response = self._renewed(recording)
            if response is not None:
                return response
        raise _contended(rid)

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
            expected = recording.copy(
                content_md5=_one_checksum("content_md5", recording.content_md5, req.content_md5),
                content_sha256=_one_checksum(
                    "content_sha256", recording.content_sha256, req.content_sha256
                ),
            )
            stored = self._storage.head(recording.s3_key)
            now = self._now()
            try:
                self._verify_upload(expected, stored, declared_size=req.file_size_bytes)
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
                content_md5=stored.md5 or expected.content_md5,
                content_sha256=stored.sha256 or expected.content_sha256,
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
        if (
            isinstance(offset, bool)
            or not isinstance(offset, int)
            or not 0 <= offset <= _MAX_OFFSET
        ):
            raise ValidationError.for_field("offset", f"must be an integer from 0 to {_MAX_OFFSET}")
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
        if not _has_verified_upload(recording):
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
        policy.check_text(text, "text")
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
        if service is not None:
            policy.check_text(service, "service")
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
        policy.check_text(error, "error")
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

    def expire_stale_uploads(
        self,
        *,
        now: dt.datetime | None = None,
        batch_size: int = 100,
        lease_seconds: int = 300,
    ) -> int:
        """Settle every ``uploading`` recording whose upload deadline has passed.

        Storage is asked first: an object that did arrive (the client's
        completion call was lost) and passes verification promotes the
        recording to ``uploaded``. The others become ``failed`` with
        ``processing_error`` saying why. Returns how many became ``failed``.

        Work is claimed in batches of ``batch_size``: claiming pushes each
        recording's deadline ``lease_seconds`` ahead, so sweepers running at
        the same time (cron on several hosts, say) never take the same
        recording; one that dies mid-batch leaves its claims to expire and be
        taken again. A storage outage raises ``STORAGE_UNAVAILABLE`` and
        leaves the unsettled recordings ``uploading``.
        """
        moment = self._now() if now is None else _aware(now, "now")
        _check_positive(batch_size, "batch_size")
        _check_positive(lease_seconds, "lease_seconds")
        lease_until = moment + dt.timedelta(seconds=lease_seconds)
        failed = 0
        while batch := self._repository.claim_stale_uploads(
            now=moment, limit=batch_size, lease_until=lease_until
        ):
            for recording in batch:
                failed += self._settle_stale_upload(recording, moment)
        return failed

    def reconcile(
        self,
        *,
        delete_orphans: bool = False,
        orphan_min_age_seconds: int = 3600,
        now: dt.datetime | None = None,
        page_size: int = 1000,
    ) -> ReconcileReport:
        """Compare storage with the recordings: a dry run unless ``delete_orphans``.

        Walks the objects under the key prefix and the recordings in key
        order side by side (memory stays bounded by ``page_size``) and
        reports objects that no recording owns, and live, verified
        recordings whose object is gone. Each finding is checked once more
        on its own before it is reported, so activity during the walk cannot
        produce a false finding. With ``delete_orphans``, orphans last
        modified more than ``orphan_min_age_seconds`` ago are deleted.
        Soft-deleted recordings own their objects until purged.
        """
        moment = self._now() if now is None else _aware(now, "now")
        _check_positive(page_size, "page_size")
        prefix = self._settings.s3_recordings_prefix
        oldest_orphan = moment - dt.timedelta(seconds=orphan_min_age_seconds)
        orphans: list[str] = []
        missing: list[uuid.UUID] = []
        deleted = scanned_objects = scanned_recordings = 0
        recordings = self._recordings_by_key(prefix, page_size)
        recording = next(recordings, None)
        for stored in self._storage.iter_objects(prefix):
            scanned_objects += 1
            while recording is not None and recording.s3_key < stored.key:
                scanned_recordings += 1
                if self._object_missing(recording):
                    missing.append(recording.id)
                recording = next(recordings, None)
            if recording is not None and recording.s3_key == stored.key:
                scanned_recordings += 1
                recording = next(recordings, None)
                continue
            if self._key_is_owned(stored.key):
                continue  # its recording was created while we walked
            orphans.append(stored.key)
            old_enough = stored.last_modified is None or stored.last_modified < oldest_orphan
            if delete_orphans and old_enough:
                self._storage.delete(stored.key)
                deleted += 1
        while recording is not None:
            scanned_recordings += 1
            if self._object_missing(recording):
                missing.append(recording.id)
            recording = next(recordings, None)
        return ReconcileReport(
            scanned_objects=scanned_objects,
            scanned_recordings=scanned_recordings,
            orphan_keys=orphans,
            missing_objects=missing,
            deleted_orphans=deleted,
            dry_run=not delete_orphans,
        )

    def purge_deleted(
        self,
        *,
        retention_days: int | None = None,
        now: dt.datetime | None = None,
        batch_size: int = 100,
    ) -> int:
        """Remove the audio of recordings soft-deleted longer ago than the retention period.

        Each purged recording's object is deleted and its row scrubbed of
        personal content (original filename, transcript, metadata, errors),
        keeping ids, keys and timestamps for the audit trail and setting
        ``purged_at``. Returns how many were purged. Retention defaults to
        ``settings.deleted_retention_days``.
        """
        moment = self._now() if now is None else _aware(now, "now")
        _check_positive(batch_size, "batch_size")
        days = self._settings.deleted_retention_days if retention_days is None else retention_days
        if isinstance(days, bool) or not isinstance(days, int) or days < 0:
            raise ValidationError.for_field("retention_days", "must be a non-negative integer")
        cutoff = moment - dt.timedelta(days=days)
        purged = 0
        while batch := self._repository.list_purgeable(deleted_before=cutoff, limit=batch_size):
            for recording in batch:
                self._storage.delete(recording.s3_key)
                scrubbed = recording.copy(
                    original_filename=None,
                    transcript_text=None,
                    recording_metadata=None,
                    processing_error=None,
                    s3_url=None,
                    purged_at=moment,
                    updated_at=moment,
                )
                purged += self._repository.mark_purged(scrubbed)
        return purged

    # -------------------------------------------------------------------------- internals

    def _now(self) -> dt.datetime:
        return _aware(self._clock(), "clock()")

    def _owned(self, owner: uuid.UUID, rid: uuid.UUID) -> Recording:
        recording = self._repository.get(rid)
        if recording is None or recording.is_deleted or not recording.is_owned_by(owner):
            raise RecordingNotFoundError(recording_id=str(rid))
        return recording

    def _upload_deadline(self, now: dt.datetime) -> dt.datetime:
        settings = self._settings
        return now + dt.timedelta(
            seconds=settings.s3_presigned_url_expiration + settings.upload_grace_seconds
        )

    def _sign_upload(self, key: str, mime_type: str) -> UploadTicket:
        return self._storage.create_upload(
            key=key,
            content_type=mime_type,
            max_size=self._settings.max_file_size,
            expires_in=self._settings.s3_presigned_url_expiration,
        )

    def _repeat_initiate(
        self, existing: Recording, req: InitiateUploadRequest, mime_type: str
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
        for _ in range(_SAVE_ATTEMPTS):
            response = self._renewed(existing)
            if response is not None:
                return response
            existing = self._live(existing.id)
        raise _contended(existing.id)

    def _renewed(self, recording: Recording) -> InitiateUploadResponse | None:
        """Sign a new ticket and push the deadline; None if the recording changed meanwhile."""
        if recording.status is not RecordingStatus.UPLOADING:
            raise InvalidStatusTransitionError(
                f"A recording that is {recording.status.value} takes no new upload",
                recording_id=str(recording.id),
                current_status=recording.status.value,
            )
        ticket = self._sign_upload(recording.s3_key, recording.mime_type or "")
        now = self._now()
        renewed = recording.copy(upload_expires_at=self._upload_deadline(now), updated_at=now)
        if not self._repository.save(renewed, expected_status=RecordingStatus.UPLOADING):
            return None
        return _ticket_response(renewed, ticket)

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
        for name, declared, reported in (
            ("content_md5", recording.content_md5, stored.md5),
            ("content_sha256", recording.content_sha256, stored.sha256),
        ):
            if declared is not None and reported is not None and declared != reported:
                raise UploadVerificationError(
                    f"The stored file's checksum does not match {name}",
                    checksum=name,
                    expected_checksum=declared,
                    stored_checksum=reported,
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

    def _recordings_by_key(self, prefix: str, page_size: int) -> Iterator[Recording]:
        after: str | None = None
        while page := self._repository.list_by_key(prefix=prefix, after=after, limit=page_size):
            yield from page
            after = page[-1].s3_key

    def _key_is_owned(self, key: str) -> bool:
        found = self._repository.list_by_key(prefix=key, after=None, limit=1)
        return bool(found) and found[0].s3_key == key

    def _object_missing(self, recording: Recording) -> bool:
        """Whether a live recording whose upload was verified has lost its object."""
        if recording.is_deleted or not _has_verified_upload(recording):
            return False
        return self._storage.head(recording.s3_key) is None

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


def _ticket_response(recording: Recording, ticket: UploadTicket) -> InitiateUploadResponse:
    return InitiateUploadResponse(
        recording_id=recording.id,
        upload_url=ticket.url,
        upload_fields=dict(ticket.fields),
        s3_key=recording.s3_key,
        bucket=ticket.bucket,
        expires_in=ticket.expires_in,
        max_file_size=ticket.max_size,
    )


def _one_checksum(field: str, at_initiate: str | None, at_complete: str | None) -> str | None:
    """Return the checksum the client declared, refusing two different declarations."""
    if at_initiate is not None and at_complete is not None and at_initiate != at_complete:
        raise ValidationError.for_field(field, "differs from the checksum given at initiate")
    return at_complete or at_initiate


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
    if value is None:
        return None
    parsed = _uuid(value, field)
    if parsed.int == 0:
        raise ValidationError.for_field(field, "must not be the nil UUID")
    return parsed


def _optional_status(value: object) -> RecordingStatus | None:
    if value is None or isinstance(value, RecordingStatus):
        return value
    if isinstance(value, str) and value in _STATUS_VALUES:
        return RecordingStatus(value)
    raise ValidationError.for_field("status", f"must be one of {', '.join(_STATUS_VALUES)}")


_STATUS_VALUES: Final = tuple(s.value for s in RecordingStatus)


def _has_verified_upload(recording: Recording) -> bool:
    """Whether the recording's object arrived and passed verification (so it can be read).

    That is every status after ``uploading``, except a ``failed`` recording
    whose upload never arrived.
    """
    return recording.status is not RecordingStatus.UPLOADING and (
        recording.file_size_bytes is not None
    )


def _check_positive(value: object, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValidationError.for_field(name, "must be a positive integer")


def _aware(value: dt.datetime, name: str) -> dt.datetime:
    if not isinstance(value, dt.datetime) or value.tzinfo is None:
        raise ValidationError.for_field(name, "must be a timezone-aware datetime")
    return value


def _str_or_none(value: uuid.UUID | None) -> str | None:
    return None if value is None else str(value)
