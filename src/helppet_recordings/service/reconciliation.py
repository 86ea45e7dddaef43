"""Reconcile: compare what storage holds with the recordings, and tidy what nobody reads."""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Iterator
from typing import Final

import attrs

from helppet_recordings.errors import RepositoryError
from helppet_recordings.models import ReconcileReport, Recording, StoredObject
from helppet_recordings.service import inputs
from helppet_recordings.service.changes import ServiceContext
from helppet_recordings.service.leftovers import abort_orphan_uploads, unfinished_uploads
from helppet_recordings.service.verification import unverified_reason
from helppet_recordings.settings import MAX_RETENTION_DAYS
from helppet_recordings.status import RecordingStatus

__all__ = ["DEFAULT_ORPHAN_MIN_AGE_SECONDS", "MAX_ORPHAN_MIN_AGE_SECONDS", "reconcile"]

DEFAULT_ORPHAN_MIN_AGE_SECONDS: Final = 3600
"""How old an orphan must be for ``reconcile`` to delete it, unless told otherwise (an hour)."""

MAX_ORPHAN_MIN_AGE_SECONDS: Final = MAX_RETENTION_DAYS * 24 * 60 * 60
"""The oldest ``reconcile`` may require an orphan to be before deleting it (a hundred years)."""

_logger = logging.getLogger("helppet_recordings.maintenance")  # the name hosts configured


def reconcile(
    ctx: ServiceContext,
    *,
    delete_orphans: bool,
    orphan_min_age_seconds: int,
    now: dt.datetime | None,
    page_size: int,
) -> ReconcileReport:
    """Compare storage with the recordings (see ``RecordingService.reconcile``)."""
    moment = ctx.now() if now is None else inputs.aware(now, "now")
    inputs.check_positive(page_size, "page_size")
    inputs.check_range(
        orphan_min_age_seconds, "orphan_min_age_seconds", 0, MAX_ORPHAN_MIN_AGE_SECONDS
    )
    walk = _Walk(ctx, oldest_orphan=moment - dt.timedelta(seconds=orphan_min_age_seconds))
    walk.run(page_size)
    unfinished = list(unfinished_uploads(ctx, now=moment))
    deleted = deleted_staging = aborted = 0
    if delete_orphans:  # only after the whole walk: a failure midway deletes nothing
        deleted = _delete_all(ctx, walk.deletable)
        deleted_staging = _delete_all(ctx, walk.leftovers)
        aborted = abort_orphan_uploads(ctx, now=moment)
    ctx.metrics.reconciled(
        orphans=len(walk.orphans) + len(walk.leftovers),
        missing=len(walk.missing),
        deleted=deleted + deleted_staging,
        changed=len(walk.changed),
    )
    report = ReconcileReport(
        scanned_objects=walk.scanned_objects,
        scanned_recordings=walk.scanned_recordings,
        orphan_keys=walk.orphans,
        missing_objects=walk.missing,
        deleted_orphans=deleted,
        dry_run=not delete_orphans,
        leftover_staging_keys=walk.leftovers,
        deleted_staging=deleted_staging,
        unfinished_uploads=[key for key, _, _ in unfinished],
        aborted_uploads=aborted,
        changed_objects=walk.changed,
    )
    _log_findings(report)
    return report


@attrs.define
class _Walk:
    """Storage's objects and the recordings side by side in key order; what they disagree on."""

    ctx: ServiceContext
    oldest_orphan: dt.datetime
    orphans: list[str] = attrs.field(factory=list)
    deletable: list[str] = attrs.field(factory=list)
    """The orphans old enough to delete."""
    leftovers: list[str] = attrs.field(factory=list)
    missing: list[uuid.UUID] = attrs.field(factory=list)
    changed: list[uuid.UUID] = attrs.field(factory=list)
    scanned_objects: int = 0
    scanned_recordings: int = 0

    def run(self, page_size: int) -> None:
        """Walk every object and recording under the key prefix once."""
        ctx = self.ctx
        staging = ctx.settings.s3_staging_prefix
        recordings = _recordings_by_key(ctx, ctx.settings.s3_recordings_prefix, page_size)
        recording = next(recordings, None)
        for stored in ctx.storage.iter_objects(ctx.settings.s3_recordings_prefix):
            self.scanned_objects += 1
            old_enough = stored.last_modified is None or stored.last_modified < self.oldest_orphan
            if stored.key.startswith(staging):
                # Looked at again once found: a completion that landed meanwhile moved it away.
                if _staging_is_leftover(ctx, stored.key, old_enough=old_enough) and (
                    ctx.storage.head(stored.key) is not None
                ):
                    self.leftovers.append(stored.key)
                continue
            while recording is not None and recording.s3_key < stored.key:
                self._without_object(recording)
                recording = next(recordings, None)
            if recording is not None and recording.s3_key == stored.key:
                self.scanned_recordings += 1
                if _listed_unlike_verified(recording, stored) and _object_changed(ctx, recording):
                    self.changed.append(recording.id)
                owner: Recording | None = recording
                recording = next(recordings, None)
            else:
                owner = ctx.at_key(stored.key)  # created while we walked?
            if owner is not None and _reads_its_object(owner):
                continue
            self.orphans.append(stored.key)
            if old_enough:
                self.deletable.append(stored.key)
        while recording is not None:
            self._without_object(recording)
            recording = next(recordings, None)

    def _without_object(self, recording: Recording) -> None:
        """Count a recording the walk passed with no object at its key, and check it is missing."""
        self.scanned_recordings += 1
        if _object_missing(self.ctx, recording):
            self.missing.append(recording.id)


def _log_findings(report: ReconcileReport) -> None:
    if report.unfinished_uploads:
        _logger.warning(
            "Reconcile found %d abandoned multipart uploads (%d aborted)",
            len(report.unfinished_uploads),
            report.aborted_uploads,
        )
    if (
        report.orphan_keys
        or report.missing_objects
        or report.leftover_staging_keys
        or report.changed_objects
    ):
        _logger.warning(
            "Reconcile found %d orphan objects (%d deleted), %d leftover staging objects "
            "(%d deleted), %d recordings without audio and %d whose audio was replaced",
            len(report.orphan_keys),
            report.deleted_orphans,
            len(report.leftover_staging_keys),
            report.deleted_staging,
            len(report.missing_objects),
            len(report.changed_objects),
        )


def _recordings_by_key(ctx: ServiceContext, prefix: str, page_size: int) -> Iterator[Recording]:
    """Every recording under ``prefix`` by ascending key, a page at a time.

    A page whose keys do not rise past the last key seen (an inclusive
    ``after``, or no order) raises ``DATABASE_ERROR``: walked on, it would
    never end, or mismatch objects and recordings.
    """
    after: str | None = None
    while page := ctx.repository.list_by_key(prefix=prefix, after=after, limit=page_size):
        for recording in page:
            if after is not None and recording.s3_key <= after:
                raise RepositoryError(
                    "The repository's list_by_key returned a key not after the previous one: "
                    "its keys must come in ascending order, each greater than 'after'",
                    operation="list_by_key",
                )
            after = recording.s3_key
            yield recording


def _delete_all(ctx: ServiceContext, keys: list[str]) -> int:
    for key in keys:
        ctx.storage.delete(key)
    return len(keys)


def _staging_is_leftover(ctx: ServiceContext, key: str, *, old_enough: bool) -> bool:
    """Whether a staging object waits for no upload (its recording moved on, or none owns it).

    An object no recording owns may belong to an initiate still being
    written, so it is a leftover only once old enough; bytes a replayed
    ticket left after its recording stopped ``uploading`` are leftovers at
    once. A soft-deleted upload owns its staging object until purged.
    """
    owner = ctx.repository.find_by_upload_key(key)
    if owner is None:
        return old_enough
    return owner.status is not RecordingStatus.UPLOADING or owner.purged_at is not None


def _reads_its_object(recording: Recording) -> bool:
    """Whether anything will read the object at the recording's ``s3_key``.

    Verified audio is read until purged, and an upload still under way will
    be verified. Bytes at the key of a purged recording, or of one that
    failed before its audio was verified, were left by a ticket or an upload
    nobody completes: orphans.
    """
    if recording.purged_at is not None:
        return False
    return recording.has_verified_audio or recording.status is RecordingStatus.UPLOADING


def _object_missing(ctx: ServiceContext, recording: Recording) -> bool:
    """Whether a live recording whose upload was verified has lost its object.

    A finding is read again: a recording deleted (and purged) while the walk
    ran lost its object by design, not by accident.
    """
    if not _keeps_verified_audio(recording) or ctx.storage.head(recording.s3_key) is not None:
        return False
    current = ctx.repository.get(recording.id)
    return current is not None and _keeps_verified_audio(current)


def _keeps_verified_audio(recording: Recording) -> bool:
    return not recording.is_deleted and recording.has_verified_audio


def _listed_unlike_verified(recording: Recording, stored: StoredObject) -> bool:
    """Whether a listing shows another object than the one verified: a hint, checked by head.

    A listing without ETags is judged by size alone.
    """
    if not _keeps_verified_audio(recording):
        return False
    if stored.size != recording.file_size_bytes:
        return True
    return stored.etag is not None and recording.verified_etag not in (None, stored.etag)


def _object_changed(ctx: ServiceContext, recording: Recording) -> bool:
    """Whether a live recording's object is no longer the verified one (another size or ETag).

    Judged on ``head``, not on the listing (some servers list a multipart
    object's ETag unlike they report it), and read again: a recording deleted
    while the walk ran no longer keeps its audio.
    """
    stored = ctx.storage.head(recording.s3_key)
    if unverified_reason(recording, stored) != "object_changed":
        return False
    current = ctx.repository.get(recording.id)
    # The recording read again, against the same head: its key and verified object cannot
    # have moved since (a verified recording is never verified again).
    return (
        current is not None
        and _keeps_verified_audio(current)
        and unverified_reason(current, stored) == "object_changed"
    )
