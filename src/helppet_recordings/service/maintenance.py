"""Scheduled jobs: settle stale uploads, purge (and ``reconcile``, from :mod:`.reconciliation`)."""

from __future__ import annotations

import datetime as dt
import logging
import uuid

from helppet_recordings import events
from helppet_recordings.errors import (
    RecordingError,
    RecordingNotFoundError,
    StorageError,
    UnavailableError,
    UploadIncompleteError,
    UploadNotFoundError,
    ValidationError,
)
from helppet_recordings.models import Recording
from helppet_recordings.service import inputs
from helppet_recordings.service.changes import Change, ServiceContext
from helppet_recordings.service.leftovers import (
    abort_orphan_uploads,
    discard_upload,
)
from helppet_recordings.service.reconciliation import (
    DEFAULT_ORPHAN_MIN_AGE_SECONDS,
    MAX_ORPHAN_MIN_AGE_SECONDS,
    reconcile,
)
from helppet_recordings.service.resumable import assemble
from helppet_recordings.service.staging import expire_upload, promote_upload
from helppet_recordings.settings import MAX_RETENTION_DAYS

__all__ = [
    "DEFAULT_ORPHAN_MIN_AGE_SECONDS",
    "MAX_ORPHAN_MIN_AGE_SECONDS",
    "abort_abandoned_uploads",
    "expire_stale_uploads",
    "purge_deleted",
    "reconcile",
]

_logger = logging.getLogger("helppet_recordings.maintenance")


def expire_stale_uploads(
    ctx: ServiceContext,
    *,
    now: dt.datetime | None,
    batch_size: int,
    lease_seconds: int,
    abort_abandoned: bool = True,
) -> int:
    """Settle every ``uploading`` recording past its deadline; return how many failed.

    An object that did arrive and passes verification promotes its recording
    to ``uploaded`` instead (its completion call was lost). Then, unless
    ``abort_abandoned`` is False, abandoned multipart uploads are aborted.
    """
    moment = ctx.now() if now is None else inputs.aware(now, "now")
    inputs.check_positive(batch_size, "batch_size")
    inputs.check_lease(lease_seconds, "lease_seconds")
    lease_until = moment + dt.timedelta(seconds=lease_seconds)
    failed = promoted = 0
    while batch := ctx.repository.claim_stale_uploads(
        now=moment, limit=batch_size, lease_until=lease_until
    ):
        for recording in batch:
            try:
                assemble(ctx, recording)  # a multipart upload whose parts all arrived
                promoted += promote_upload(ctx, recording, moment)
            except UnavailableError:
                raise  # an outage: the recording stays uploading for the next sweep
            except RecordingError as exc:
                # A refusal (403: a KMS grant, or a missing key without s3:ListBucket) is no
                # verdict on the bytes: past its deadline the upload fails, but what storage
                # holds is kept (reconcile reports it), never deleted on a refusal.
                refused = isinstance(exc, StorageError)
                claim = recording.lease_expires_at  # this sweep's, set when it claimed the batch
                try:
                    reason = _stale_reason(exc, recording)
                    expired = expire_upload(ctx, recording, reason, moment, claim=claim)
                except RecordingNotFoundError:
                    continue  # deleted while the sweep looked at it: nothing to settle
                if not expired:
                    continue
                failed += 1
                if refused:
                    _logger.warning(
                        "Stale upload %s failed unread: storage refused the request (%s); "
                        "what it holds is kept",
                        recording.id,
                        exc.details.get("storage_error") or exc.error_code,
                    )
                else:
                    discard_upload(ctx, recording)
    aborted = _abort_orphans_logged(ctx, moment) if abort_abandoned else 0
    if failed or promoted or aborted:
        _logger.info(
            "Stale uploads settled: %d failed, %d promoted, %d abandoned multipart uploads aborted",
            failed,
            promoted,
            aborted,
        )
    return failed


def _abort_orphans_logged(ctx: ServiceContext, moment: dt.datetime) -> int:
    """Abort orphan multipart uploads as the sweep's last step; log a refusal, not raise it.

    The stale uploads are settled by then, and a deployment that never uses
    multipart may well not grant listing them.
    """
    try:
        return abort_orphan_uploads(ctx, now=moment)
    except StorageError as exc:
        _logger.warning(
            "Abandoned multipart uploads were not aborted: storage refused the request (%s); "
            "grant s3:ListBucketMultipartUploads and s3:AbortMultipartUpload",
            exc.details.get("storage_error") or exc.error_code,
        )
        return 0


def abort_abandoned_uploads(ctx: ServiceContext, *, now: dt.datetime | None) -> int:
    """Abort multipart uploads no live upload waits for; return how many."""
    moment = ctx.now() if now is None else inputs.aware(now, "now")
    aborted = abort_orphan_uploads(ctx, now=moment)
    if aborted:
        _logger.info("%d abandoned multipart uploads aborted", aborted)
    return aborted


def _stale_reason(exc: RecordingError, recording: Recording) -> str:
    """Say why a stale upload failed, claiming no more than storage showed.

    A multipart upload whose assembled file a completion refused has no
    object and no upload id left in storage; signing its parts again starts
    a new, empty upload. Nothing records the refusal, so those reasons name
    it as one of the possible causes.
    """
    if isinstance(exc, StorageError):
        code = exc.details.get("storage_error") or exc.error_code
        return f"The upload deadline passed and storage refused to read the upload ({code})"
    if isinstance(exc, UploadNotFoundError):
        if recording.multipart_size_bytes is not None:
            return (
                "The upload deadline passed without a file: storage no longer holds the "
                "multipart upload (its assembled file was refused, or the upload was aborted)"
            )
        return "The upload deadline passed without a file"
    if isinstance(exc, UploadIncompleteError):
        return _missing_parts_reason(exc)
    return "The upload deadline passed and the stored file was refused: " + exc.message


def _missing_parts_reason(exc: UploadIncompleteError) -> str:
    """How many of the planned parts storage lacked, or that it held none."""
    missing = exc.details.get("missing_parts")
    total = exc.details.get("part_count")
    if not isinstance(missing, list) or not isinstance(total, int):
        return "The upload deadline passed with parts of the file missing"
    if len(missing) >= total:
        return (
            "The upload deadline passed with no part of the file in storage "
            "(none arrived, or a refused file's parts were not sent again)"
        )
    return f"The upload deadline passed with {len(missing)} of {total} parts of the file missing"


def purge_deleted(
    ctx: ServiceContext, *, retention_days: int | None, now: dt.datetime | None, batch_size: int
) -> int:
    """Remove the audio of long soft-deleted recordings and scrub them; return how many.

    With a repository that writes audit entries after the change, a purge
    whose entry cannot be stored stands (its audio is gone, its event is
    published, the gap is logged) and its failure is raised at once: no
    other recording's audio is deleted unaudited.
    """
    moment = ctx.now() if now is None else inputs.aware(now, "now")
    inputs.check_positive(batch_size, "batch_size")
    days = ctx.settings.deleted_retention_days if retention_days is None else retention_days
    if isinstance(days, bool) or not isinstance(days, int) or not 0 <= days <= MAX_RETENTION_DAYS:
        raise ValidationError.for_field(
            "retention_days", f"must be an integer from 0 to {MAX_RETENTION_DAYS}"
        )
    cutoff = moment - dt.timedelta(days=days)

    def scrub(recording: Recording, at: dt.datetime) -> Change | None:
        if not recording.is_deleted or recording.purged_at is not None:
            return None
        discard_upload(ctx, recording)  # an unfinished multipart upload is billed until aborted
        ctx.storage.delete(recording.s3_key)
        if recording.staging_key is not None:
            ctx.storage.delete(recording.staging_key)  # whatever a ticket left behind
        return Change(recording.scrubbed(at), events.RECORDING_PURGED)

    def load(rid: uuid.UUID) -> Recording:
        recording = ctx.repository.get(rid)
        if recording is None:
            raise RecordingNotFoundError(recording_id=str(rid))
        return recording

    purged = 0
    while batch := ctx.repository.list_purgeable(deleted_before=cutoff, limit=batch_size):
        for recording in batch:
            try:
                outcome = ctx.change(
                    recording.id,
                    scrub,
                    loaded=recording,
                    load=load,
                    write=ctx.purge_write,
                    at=moment,
                )
            except RecordingNotFoundError:
                continue  # the row itself is gone: nothing left to purge
            purged += outcome.changed
    return purged
