"""A thread-safe in-memory repository with the semantics a database gives."""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from collections import Counter, defaultdict
from typing import ClassVar

import attrs

from helppet_recordings.audit import AuditEntry
from helppet_recordings.models import Recording, RecordingFilter, RecordingPage
from helppet_recordings.repositories._duplicates import duplicate_recording
from helppet_recordings.stats import RepositoryStats, UploadCounts, counted_status, summarize
from helppet_recordings.status import RecordingStatus

__all__ = ["InMemoryRepository"]


_WORK_STATUSES = frozenset({RecordingStatus.UPLOADED, RecordingStatus.PROCESSING})
_FIELDS = tuple(field.name for field in attrs.fields(Recording))
_KEYS_NEVER_CHANGE = "a recording's storage key and idempotency key never change"


class InMemoryRepository:
    """Keeps recordings in a dict, guarded by one lock.

    Stored recordings are copies: changing an object after ``add`` or after
    ``get`` never changes what is stored, exactly as with a database. Useful
    for tests, demos and single-process tools; nothing survives the process.
    """

    supports_atomic_audit: ClassVar[bool] = True
    """It stores an audited change and its entry in one write (``AuditedWrites``)."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._rows: dict[uuid.UUID, Recording] = {}
        self._keys: set[str] = set()
        self._idempotency: dict[tuple[uuid.UUID, str], uuid.UUID] = {}
        self._audit: defaultdict[uuid.UUID, list[AuditEntry]] = defaultdict(list)
        self._audit_ids: set[uuid.UUID] = set()

    def add(self, recording: Recording) -> None:
        """Store a new recording.

        Raise ``DuplicateRecordingError`` (a ``ValueError``) if its id, its key
        or its owner's idempotency key is already used; nothing is stored then.
        """
        idempotency = _idempotency_slot(recording)
        with self._lock:
            if recording.id in self._rows:
                raise duplicate_recording("id")
            if recording.s3_key in self._keys:
                raise duplicate_recording("s3_key")
            if idempotency is not None and idempotency in self._idempotency:
                raise duplicate_recording("idempotency_key")
            self._rows[recording.id] = recording.copy()
            self._keys.add(recording.s3_key)
            if idempotency is not None:
                self._idempotency[idempotency] = recording.id

    def get(self, recording_id: uuid.UUID) -> Recording | None:
        """Return a copy of the recording with this id (deleted ones included), or None."""
        with self._lock:
            row = self._rows.get(recording_id)
            return None if row is None else row.copy()

    def save(
        self,
        recording: Recording,
        *,
        expected_status: RecordingStatus,
        previous: Recording | None = None,
        expected_lease: dt.datetime | None = None,
        audit: AuditEntry | None = None,
    ) -> bool:
        """Replace the stored recording if it is live and in ``expected_status``.

        With ``previous`` (the recording as it was loaded) only the fields
        that differ from it are written, so a concurrent change to other
        fields is kept. With ``expected_lease``, only while the stored
        ``lease_expires_at`` is that (a worker's claim still holds). A write
        that replaces ``multipart_upload_id`` lands only while the stored one
        is ``previous``'s. With ``audit``, the entry is appended with the
        change, or neither is stored.
        """
        keys = (recording.s3_key, recording.idempotency_key)
        if previous is not None and (recording.id, *keys) != (
            previous.id,
            previous.s3_key,
            previous.idempotency_key,
        ):
            raise ValueError(_KEYS_NEVER_CHANGE)
        with self._lock:
            row = self._rows.get(recording.id)
            if row is None or row.is_deleted or row.status != expected_status:
                return False
            if expected_lease is not None and row.lease_expires_at != expected_lease:
                return False
            if previous is not None and _replaces_upload(recording, previous, row):
                return False
            if keys != (row.s3_key, row.idempotency_key):
                raise ValueError(_KEYS_NEVER_CHANGE)
            self._check_new_entry(audit)
            if previous is None:
                self._rows[recording.id] = recording.copy()
            else:
                fresh = recording.copy()  # the stored row shares no dict with the caller
                changed = {
                    name: getattr(fresh, name)
                    for name in _FIELDS
                    if getattr(fresh, name) != getattr(previous, name)
                }
                changed["status"] = fresh.status
                self._rows[recording.id] = row.copy(**changed)
            self._append(audit)
            return True

    def find(self, recording_filter: RecordingFilter, *, limit: int, offset: int) -> RecordingPage:
        """Return live recordings matching the filter, newest first, and their total count."""
        with self._lock:
            matching = [row for row in self._rows.values() if recording_filter.matches(row)]
        matching.sort(key=_listing_order, reverse=True)
        page = [row.copy() for row in matching[offset : offset + limit]]
        return RecordingPage(items=page, total=len(matching))

    def find_page(
        self,
        recording_filter: RecordingFilter,
        *,
        limit: int,
        after: tuple[dt.datetime, uuid.UUID] | None = None,
    ) -> RecordingPage:
        """Return up to ``limit`` live recordings matching the filter after ``after``, newest first.

        ``after`` is the ``(created_at, id)`` of the last recording of the
        previous page (None for the first); ``total`` counts every match.
        """
        if limit < 0:
            msg = "limit must not be negative"
            raise ValueError(msg)
        if after is not None and after[0].utcoffset() is None:
            msg = "datetimes compared in the repository must be timezone-aware"
            raise ValueError(msg)
        with self._lock:
            matching = [row for row in self._rows.values() if recording_filter.matches(row)]
        total = len(matching)
        if after is not None:
            position = (after[0], after[1].bytes)
            matching = [row for row in matching if _listing_order(row) < position]
        matching.sort(key=_listing_order, reverse=True)
        return RecordingPage(items=[row.copy() for row in matching[:limit]], total=total)

    def list_stale_uploads(self, *, now: dt.datetime, limit: int) -> list[Recording]:
        """Return up to ``limit`` live uploading recordings whose deadline is before ``now``."""
        with self._lock:  # re-entrant: claim_stale_uploads calls this holding the lock
            stale = [
                row
                for row in self._rows.values()
                if not row.is_deleted
                and row.status is RecordingStatus.UPLOADING
                and row.upload_expires_at is not None
                and row.upload_expires_at < now
            ]
        stale.sort(key=lambda row: (row.upload_expires_at or now, row.id.bytes))
        return [row.copy() for row in stale[:limit]]

    def claim_stale_uploads(
        self, *, now: dt.datetime, limit: int, lease_until: dt.datetime
    ) -> list[Recording]:
        """Take up to ``limit`` stale uploads; their deadline and lease become ``lease_until``."""
        with self._lock:
            claimed = self.list_stale_uploads(now=now, limit=limit)
            for row in claimed:
                row.upload_expires_at = row.lease_expires_at = lease_until
                self._rows[row.id] = row.copy()
        return claimed

    def claim_work(
        self, *, now: dt.datetime, limit: int, lease_until: dt.datetime
    ) -> list[Recording]:
        """Take up to ``limit`` recordings for a transcription worker, setting their lease."""
        with self._lock:
            ready = [
                row
                for row in self._rows.values()
                if not row.is_deleted
                and row.status in _WORK_STATUSES
                and row.lease_expires_at is not None
                and row.lease_expires_at <= now
            ]
            ready.sort(key=lambda row: (row.lease_expires_at or now, row.id.bytes))
            claimed = [row.copy(lease_expires_at=lease_until) for row in ready[:limit]]
            for row in claimed:
                self._rows[row.id] = row.copy()
        return claimed

    def find_by_upload_key(self, key: str) -> Recording | None:
        """Return the recording whose ticket names staging ``key``, or None."""
        with self._lock:
            for row in self._rows.values():
                if row.upload_key == key:
                    return row.copy()
        return None

    def find_by_idempotency_key(self, user_id: uuid.UUID, key: str) -> Recording | None:
        """Return the user's recording created with this idempotency key, or None."""
        with self._lock:
            recording_id = self._idempotency.get((user_id, key))
            return None if recording_id is None else self._rows[recording_id].copy()

    def list_by_key(self, *, prefix: str, after: str | None, limit: int) -> list[Recording]:
        """Return up to ``limit`` recordings under ``prefix`` with keys after ``after``, by key."""
        with self._lock:
            rows = [
                row
                for row in self._rows.values()
                if row.s3_key.startswith(prefix) and (after is None or row.s3_key > after)
            ]
        rows.sort(key=lambda row: row.s3_key)
        return [row.copy() for row in rows[:limit]]

    def list_purgeable(self, *, deleted_before: dt.datetime, limit: int) -> list[Recording]:
        """Return up to ``limit`` soft-deleted, unpurged recordings deleted before then."""
        with self._lock:
            rows = [
                row
                for row in self._rows.values()
                if row.is_deleted
                and row.purged_at is None
                and row.deleted_at is not None
                and row.deleted_at < deleted_before
            ]
        rows.sort(key=lambda row: (row.deleted_at or deleted_before, row.id.bytes))
        return [row.copy() for row in rows[:limit]]

    def mark_purged(self, recording: Recording, *, audit: AuditEntry | None = None) -> bool:
        """Store a scrubbed copy of a soft-deleted, unpurged recording (with ``audit``, both)."""
        with self._lock:
            row = self._rows.get(recording.id)
            if row is None or not row.is_deleted or row.purged_at is not None:
                return False
            self._check_new_entry(audit)
            self._rows[recording.id] = recording.copy()
            self._append(audit)
            return True

    def record_audit(self, entry: AuditEntry) -> None:
        """Append ``entry`` to its recording's trail; an entry id is never stored twice."""
        with self._lock:
            self._check_new_entry(entry)
            self._append(entry)

    def _check_new_entry(self, entry: AuditEntry | None) -> None:
        """Refuse an entry whose id is stored already (before anything is written)."""
        if entry is not None and entry.id in self._audit_ids:
            raise duplicate_recording("id")

    def _append(self, entry: AuditEntry | None) -> None:
        if entry is not None:
            self._audit_ids.add(entry.id)
            self._audit[entry.recording_id].append(entry)

    def audit_trail(self, recording_id: uuid.UUID) -> list[AuditEntry]:
        """Return the recording's audit entries, oldest first, ties in the order written."""
        with self._lock:
            entries = list(self._audit.get(recording_id, ()))
        entries.sort(key=lambda entry: entry.at)  # stable: ties keep the order written
        return entries

    def stats(self, *, since: dt.datetime | None, until: dt.datetime | None) -> RepositoryStats:
        """Compute the statistics in Python over the recordings created in ``[since, until)``.

        The twin of the SQL backends' aggregates (see :mod:`helppet_recordings.stats`).
        """
        for bound in (since, until):
            if bound is not None and bound.utcoffset() is None:
                msg = "datetimes compared in the repository must be timezone-aware"
                raise ValueError(msg)
        with self._lock:
            rows = [
                row
                for row in self._rows.values()
                if (since is None or row.created_at >= since)
                and (until is None or row.created_at < until)
            ]
        counted = [counted_status(row.status, is_deleted=row.is_deleted) for row in rows]
        by_status = Counter(counted)
        verified = [row for row in rows if row.verified_at is not None]
        unverified = [
            status for row, status in zip(rows, counted, strict=True) if row.verified_at is None
        ]
        transcribed = [
            row
            for row in rows
            if row.status is RecordingStatus.TRANSCRIBED
            and row.processing_started_at is not None
            and row.processing_completed_at is not None
        ]
        return RepositoryStats(
            by_status={status: by_status[status] for status in RecordingStatus},
            uploads=UploadCounts(
                initiated=len(rows),
                verified=len(verified),
                failed_without_audio=unverified.count(RecordingStatus.FAILED),
                uploading=unverified.count(RecordingStatus.UPLOADING),
            ),
            file_size_bytes=summarize(
                row.file_size_bytes for row in verified if row.file_size_bytes is not None
            ),
            duration_seconds=summarize(
                row.duration_seconds for row in verified if row.duration_seconds is not None
            ),
            audio_duration_seconds=summarize(
                row.audio_duration_seconds
                for row in verified
                if row.audio_duration_seconds is not None
            ),
            processing_seconds=summarize(
                (row.processing_completed_at - row.processing_started_at).total_seconds()
                for row in transcribed
                if row.processing_completed_at is not None and row.processing_started_at is not None
            ),
        )


def _listing_order(row: Recording) -> tuple[dt.datetime, bytes]:
    """Return where a recording sorts in a listing; newest first is descending order."""
    return (row.created_at, row.id.bytes)


def _idempotency_slot(recording: Recording) -> tuple[uuid.UUID, str] | None:
    if recording.idempotency_key is None:
        return None
    return (recording.recorded_by_user_id, recording.idempotency_key)


def _replaces_upload(recording: Recording, previous: Recording, stored: Recording) -> bool:
    """Whether a write replaces a multipart upload id that someone else replaced first."""
    changes = recording.multipart_upload_id != previous.multipart_upload_id
    return changes and stored.multipart_upload_id != previous.multipart_upload_id
