"""RecordingService: the public facade over the use cases.

It holds the ports and settings and delegates each operation to its use-case
module; it adds no behaviour of its own. See ``docs/architecture.md``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from helppet_recordings.events import EventListener, EventPublisher
from helppet_recordings.metrics import RecordingMetrics
from helppet_recordings.ports import RecordingRepository, RecordingStorage
from helppet_recordings.schemas import (
    CompleteUploadRequest,
    DownloadUrlResponse,
    InitiateMultipartUploadRequest,
    InitiateUploadRequest,
    InitiateUploadResponse,
    MultipartUploadResponse,
    RecordingListResponse,
    RecordingResponse,
)
from helppet_recordings.service import (
    processing,
    queries,
    resumable,
    uploads,
)
from helppet_recordings.service.changes import AuthorizeContext, Clock, ServiceContext
from helppet_recordings.service.jobs import WorkerAndJobOperations
from helppet_recordings.settings import RecordingSettings
from helppet_recordings.status import RecordingStatus

__all__ = ["RecordingService"]


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class RecordingService(WorkerAndJobOperations):
    """Runs the recording life cycle: initiate, upload, complete, process, transcribe.

    ``user_id`` arguments are the authenticated caller; another user's
    recording is reported as ``RECORDING_NOT_FOUND`` so ids cannot be probed.
    Ids may be ``uuid.UUID`` or their string form; requests may be the
    pydantic model or a plain mapping.

    ``on_event`` receives a :class:`~helppet_recordings.events.RecordingEvent`
    after each stored change, synchronously (a coroutine function raises
    ``TypeError``: schedule your coroutine on your loop from a plain function);
    a listener that raises is logged and never undoes or fails the operation.
    ``metrics`` records OpenTelemetry metrics (``helppet_recordings.metrics``;
    by default on the global meter provider, a no-op until the host
    configures one).
    """

    def __init__(
        self,
        storage: RecordingStorage,
        repository: RecordingRepository,
        settings: RecordingSettings | None = None,
        authorize_context: AuthorizeContext | None = None,
        *,
        clock: Clock = _utc_now,
        on_event: EventListener | None = None,
        metrics: RecordingMetrics | None = None,
    ) -> None:
        recorder = metrics if metrics is not None else RecordingMetrics()
        self._ctx = ServiceContext(
            storage=storage,
            repository=repository,
            settings=settings if settings is not None else RecordingSettings(),
            clock=clock,
            publisher=EventPublisher(recorder, on_event),
            metrics=recorder,
            authorize_context=authorize_context,
        )

    @property
    def settings(self) -> RecordingSettings:
        """The settings this service runs with."""
        return self._ctx.settings

    @property
    def storage(self) -> RecordingStorage:
        """The storage backend this service runs on."""
        return self._ctx.storage

    @property
    def metrics(self) -> RecordingMetrics:
        """The metrics this service records (workers add transcription times)."""
        return self._ctx.metrics

    @property
    def repository(self) -> RecordingRepository:
        """The repository backend this service runs on."""
        return self._ctx.repository

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
        return uploads.initiate_upload(self._ctx, user_id, request)

    def renew_upload(
        self, user_id: uuid.UUID | str, recording_id: uuid.UUID | str
    ) -> InitiateUploadResponse:
        """Return a fresh upload ticket for an ``uploading`` recording whose URL expired.

        The upload deadline moves forward with the new ticket. The key, the
        content type and the size limit stay those of the recording.
        """
        return uploads.renew_upload(self._ctx, user_id, recording_id)

    def initiate_multipart_upload(
        self,
        user_id: uuid.UUID | str,
        request: InitiateMultipartUploadRequest | Mapping[str, Any],
    ) -> MultipartUploadResponse:
        """Create an ``uploading`` recording taken in parts, and a signed URL for every part.

        The server plans the parts (every part but the last ``part_size``
        bytes, at least 5 MiB, at most 10,000); the client ``PUT``s each
        part's exact bytes to its URL, in any order, and completes with
        :meth:`complete_upload`. ``idempotency_key`` works as for
        :meth:`initiate_upload`.

        Raises ``VALIDATION_ERROR`` (also when the storage backend takes no
        multipart uploads), ``FILE_TOO_LARGE``, ``UNSUPPORTED_CONTENT_TYPE``,
        ``PERMISSION_DENIED`` or ``STORAGE_UNAVAILABLE``.
        """
        return resumable.initiate_multipart_upload(self._ctx, user_id, request)

    def sign_upload_parts(
        self,
        user_id: uuid.UUID | str,
        recording_id: uuid.UUID | str,
        *,
        part_numbers: Sequence[int] | None = None,
    ) -> MultipartUploadResponse:
        """Return fresh URLs for the parts storage does not hold yet (or for ``part_numbers``).

        ``uploaded_parts`` lists what storage holds, so a client resuming
        after an interruption sends only the rest. The upload deadline moves
        forward. ``WRONG_UPLOAD_KIND`` for a recording started with
        :meth:`initiate_upload`.
        """
        return resumable.sign_upload_parts(
            self._ctx, user_id, recording_id, part_numbers=part_numbers
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
        arrived, and for every later completion of a recording its upload
        deadline failed). Repeating a successful completion with the same
        size returns the recording unchanged.

        For a multipart upload the object is first assembled from the parts
        storage holds; ``UPLOAD_INCOMPLETE`` (``details.missing_parts``) when
        some are missing (the recording stays ``uploading``).
        """
        return uploads.complete_upload(self._ctx, user_id, recording_id, request)

    def list_recordings(
        self,
        user_id: uuid.UUID | str,
        *,
        appointment_id: uuid.UUID | str | None = None,
        visit_id: uuid.UUID | str | None = None,
        status: RecordingStatus | str | None = None,
        limit: int = 50,
        offset: int = 0,
        cursor: str | None = None,
    ) -> RecordingListResponse:
        """Return the caller's live recordings, newest first, optionally narrowed.

        ``limit`` is 1 to ``settings.list_max_limit``; ``total`` counts every
        recording matching the same filters. ``next_cursor`` (null on the last
        page) passed back as ``cursor`` returns the next page at the cost of
        the first, however deep. Items carry no transcript text
        (``transcript_text`` is None; its confidence, language and service
        stay): a transcript is read with :meth:`get_recording`, which audits it.
        """
        return queries.list_recordings(
            self._ctx,
            user_id,
            appointment_id=appointment_id,
            visit_id=visit_id,
            status=status,
            limit=limit,
            offset=offset,
            cursor=cursor,
        )

    def get_recording(
        self, user_id: uuid.UUID | str, recording_id: uuid.UUID | str
    ) -> RecordingResponse:
        """Return one of the caller's recordings.

        When it has a transcript, a ``transcript.read`` audit entry is stored
        before it is returned; if that write fails, the error is raised and
        nothing is returned.
        """
        return queries.get_recording(self._ctx, user_id, recording_id)

    def get_download_url(
        self, user_id: uuid.UUID | str, recording_id: uuid.UUID | str
    ) -> DownloadUrlResponse:
        """Return a signed, expiring URL to the recording's audio.

        Only a verified upload can be downloaded: ``INVALID_STATUS_TRANSITION``
        while it is still ``uploading`` or when it failed before arriving. A
        ``download_url.issued`` audit entry is stored before the URL is
        returned; if that write fails, no URL is returned.
        """
        return queries.get_download_url(self._ctx, user_id, recording_id)

    def delete_recording(self, user_id: uuid.UUID | str, recording_id: uuid.UUID | str) -> None:
        """Soft-delete one of the caller's recordings; the audio stays until purged."""
        uploads.delete_recording(self._ctx, user_id, recording_id)

    # --------------------------------------------------------------- system operations

    def start_processing(self, recording_id: uuid.UUID | str) -> RecordingResponse:
        """Move an ``uploaded`` recording to ``processing`` (a transcription worker took it)."""
        return processing.start_processing(self._ctx, recording_id)

    def record_transcript(
        self,
        recording_id: uuid.UUID | str,
        *,
        text: str,
        confidence: float | None = None,
        language: str | None = None,
        service: str | None = None,
        claim: dt.datetime | None = None,
    ) -> RecordingResponse:
        """Store a transcript and move a ``processing`` recording to ``transcribed``.

        ``claim`` (workers): the lease this worker was given; the transcript is
        refused (``claim_lost``) if another worker took the recording over.
        """
        return processing.record_transcript(
            self._ctx,
            recording_id,
            text=text,
            confidence=confidence,
            language=language,
            service=service,
            claim=claim,
        )

    def mark_failed(
        self, recording_id: uuid.UUID | str, *, error: str, claim: dt.datetime | None = None
    ) -> RecordingResponse:
        """Move a recording that is not final to ``failed``, keeping ``error`` as the reason.

        ``claim`` as for :meth:`record_transcript`.
        """
        return processing.mark_failed(self._ctx, recording_id, error=error, claim=claim)

    def reprocess(self, recording_id: uuid.UUID | str) -> RecordingResponse:
        """Send a ``failed`` recording whose audio was verified back to ``uploaded``.

        A worker takes it again; its attempts start from zero. A recording
        whose upload never arrived cannot be reprocessed
        (``INVALID_STATUS_TRANSITION``).
        """
        return processing.reprocess(self._ctx, recording_id)
