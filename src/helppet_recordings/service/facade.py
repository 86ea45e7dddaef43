"""RecordingService: the public facade over the use cases.

It holds the ports and settings and delegates each operation to its use-case
module; it adds no behaviour of its own. See ``docs/architecture.md``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from helppet_recordings.audit import AuditEntry
from helppet_recordings.events import EventListener, EventPublisher
from helppet_recordings.metrics import RecordingMetrics
from helppet_recordings.models import AudioFacts, ReconcileReport, Recording
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
    maintenance,
    processing,
    queries,
    reports,
    resumable,
    uploads,
)
from helppet_recordings.service.changes import AuthorizeContext, Clock, ServiceContext
from helppet_recordings.settings import RecordingSettings
from helppet_recordings.stats import RecordingStats
from helppet_recordings.status import RecordingStatus

__all__ = ["RecordingService"]


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class RecordingService:
    """Runs the recording life cycle: initiate, upload, complete, process, transcribe.

    ``user_id`` arguments are the authenticated caller; another user's
    recording is reported as ``RECORDING_NOT_FOUND`` so ids cannot be probed.
    Ids may be ``uuid.UUID`` or their string form; requests may be the
    pydantic model or a plain mapping.

    ``on_event`` receives a :class:`~helppet_recordings.events.RecordingEvent`
    after each stored change; a listener that raises is logged and never
    undoes or fails the operation. ``metrics`` records OpenTelemetry metrics
    (``helppet_recordings.metrics``; by default on the global meter provider,
    a no-op until the host configures one).
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
        arrived). Repeating a successful completion with the same size
        returns the recording unchanged.

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

    # ------------------------------------------------------------------ worker operations

    def claim_for_processing(self, *, limit: int = 1, lease_seconds: int = 900) -> list[Recording]:
        """Claim up to ``limit`` recordings ready for transcription, each for ``lease_seconds``.

        Ready: ``uploaded`` (since verification, or after a retry's wait), or
        ``processing`` whose worker's claim ran out. Concurrent workers in any
        number of processes claim disjoint recordings.
        """
        return processing.claim_for_processing(self._ctx, limit=limit, lease_seconds=lease_seconds)

    def extend_claim(
        self,
        recording_id: uuid.UUID | str,
        *,
        claim: dt.datetime,
        lease_seconds: int = 900,
    ) -> dt.datetime:
        """Renew a worker's claim on a ``processing`` recording for ``lease_seconds`` from now.

        Returns the new claim, which the worker's later writes carry. A job
        longer than its lease renews its claim (``TranscriptionWorker`` does,
        every third of the lease), so no other worker takes the recording
        over while it runs. ``INVALID_STATUS_TRANSITION`` with
        ``details["reason"] == "claim_lost"`` when the claim no longer holds
        the recording or runs out within five seconds (or a fifth of ``lease_seconds``).
        """
        return processing.extend_claim(
            self._ctx, recording_id, claim=claim, lease_seconds=lease_seconds
        )

    def begin_processing(self, claimed: Recording) -> Recording:
        """Start processing a claimed recording (``processing.started``; the attempt counts)."""
        return processing.begin_processing(self._ctx, claimed)

    def record_audio(
        self, recording_id: uuid.UUID | str, facts: AudioFacts, *, claim: dt.datetime
    ) -> Recording:
        """Keep what decoding the stored file measured (``audio`` in responses)."""
        return processing.record_audio(self._ctx, recording_id, facts, claim=claim)

    def defer_processing(
        self,
        recording_id: uuid.UUID | str,
        *,
        error: str,
        retry_in_seconds: float,
        claim: dt.datetime,
    ) -> Recording:
        """After a transient error, put the recording back to ``uploaded`` until the retry."""
        return processing.defer_processing(
            self._ctx, recording_id, error=error, retry_in_seconds=retry_in_seconds, claim=claim
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
        return maintenance.expire_stale_uploads(
            self._ctx, now=now, batch_size=batch_size, lease_seconds=lease_seconds
        )

    def abort_abandoned_uploads(self, *, now: dt.datetime | None = None) -> int:
        """Abort the multipart uploads in storage that no live upload waits for; return how many.

        Those are uploads under the recordings prefix started longer ago than
        an upload's deadline allows whose recording failed, was deleted,
        completed them or never got stored (an initiate that crashed).
        :meth:`expire_stale_uploads` does this too, after settling the stale
        uploads; call this one to know how many there were.
        """
        return maintenance.abort_abandoned_uploads(self._ctx, now=now)

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
        return maintenance.reconcile(
            self._ctx,
            delete_orphans=delete_orphans,
            orphan_min_age_seconds=orphan_min_age_seconds,
            now=now,
            page_size=page_size,
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
        return maintenance.purge_deleted(
            self._ctx, retention_days=retention_days, now=now, batch_size=batch_size
        )

    # ----------------------------------------------------------------------- reporting

    def audit_trail(self, recording_id: uuid.UUID | str) -> list[AuditEntry]:
        """Return the recording's audit trail, oldest first (system operation).

        Who issued a download URL, read the transcript, deleted, purged or
        reprocessed it, and when (see :mod:`helppet_recordings.audit`). Kept
        for deleted and purged recordings too; ``RECORDING_NOT_FOUND`` only
        for a recording that never existed.
        """
        return reports.audit_trail(self._ctx, recording_id)

    def stats(
        self, *, since: dt.datetime | None = None, until: dt.datetime | None = None
    ) -> RecordingStats:
        """Return statistics of the recordings created at or after ``since`` and before ``until``.

        Counts by status, the upload success rate, and the distributions of
        sizes, durations and processing times, computed by the repository
        (in the database for SQL backends; see :mod:`helppet_recordings.stats`
        for what each figure counts). ``since`` and ``until`` are
        timezone-aware (``VALIDATION_ERROR`` otherwise, or when ``until`` is
        not after ``since``); either may be None.
        """
        return reports.stats(self._ctx, since=since, until=until)
