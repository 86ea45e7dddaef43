"""RecordingService's operations for transcription workers, scheduled jobs and reports.

A mixin of :class:`~helppet_recordings.service.RecordingService`, kept apart
from the user operations so each module stays readable; like the facade, it
only delegates to the use-case modules.
"""

from __future__ import annotations

import datetime as dt
import uuid

from helppet_recordings.audit import AuditEntry
from helppet_recordings.models import AudioFacts, ReconcileReport, Recording
from helppet_recordings.service import maintenance, processing, reconciliation, reports
from helppet_recordings.service.changes import ServiceContext
from helppet_recordings.stats import RecordingStats

__all__ = ["WorkerAndJobOperations"]


class WorkerAndJobOperations:
    """Claims and leases for workers, the sweeper, reconcile, purge, the audit trail, stats."""

    _ctx: ServiceContext

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
        abort_abandoned: bool = True,
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

        Then it aborts the multipart uploads no live upload waits for (see
        :meth:`abort_abandoned_uploads`); ``abort_abandoned=False`` leaves
        that to a call of its own, which also says how many there were.
        """
        return maintenance.expire_stale_uploads(
            self._ctx,
            now=now,
            batch_size=batch_size,
            lease_seconds=lease_seconds,
            abort_abandoned=abort_abandoned,
        )

    def abort_abandoned_uploads(self, *, now: dt.datetime | None = None) -> int:
        """Abort the multipart uploads in storage that no live upload waits for; return how many.

        Those are uploads under the recordings prefix started longer ago than
        an upload's deadline allows whose recording failed, was deleted,
        completed them or never got stored (an initiate that crashed).
        :meth:`expire_stale_uploads` does this too, after settling the stale
        uploads; call this one (after ``expire_stale_uploads(abort_abandoned=False)``,
        so storage lists its uploads once) to know how many there were.
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
        modified more than ``orphan_min_age_seconds`` ago are deleted (an
        integer from 0 to a hundred years; anything else is
        ``VALIDATION_ERROR``).
        Soft-deleted recordings own their objects until purged.
        """
        return reconciliation.reconcile(
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
