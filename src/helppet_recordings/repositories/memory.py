"""A thread-safe in-memory repository with the semantics a database gives."""

from __future__ import annotations

import datetime as dt
import threading
import uuid

from helppet_recordings.models import Recording, RecordingFilter, RecordingPage
from helppet_recordings.status import RecordingStatus

__all__ = ["InMemoryRepository"]


class InMemoryRepository:
    """Keeps recordings in a dict, guarded by one lock.

    Stored recordings are copies: changing an object after ``add`` or after
    ``get`` never changes what is stored, exactly as with a database. Useful
    for tests, demos and single-process tools; nothing survives the process.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: dict[uuid.UUID, Recording] = {}
        self._keys: set[str] = set()

    def add(self, recording: Recording) -> None:
        """Store a new recording; raise ``ValueError`` if its id or key already exists."""
        with self._lock:
            if recording.id in self._rows:
                msg = f"recording {recording.id} already exists"
                raise ValueError(msg)
            if recording.s3_key in self._keys:
                msg = f"storage key {recording.s3_key!r} is already used"
                raise ValueError(msg)
            self._rows[recording.id] = recording.copy()
            self._keys.add(recording.s3_key)

    def get(self, recording_id: uuid.UUID) -> Recording | None:
        """Return a copy of the recording with this id (deleted ones included), or None."""
        with self._lock:
            row = self._rows.get(recording_id)
            return None if row is None else row.copy()

    def save(self, recording: Recording, *, expected_status: RecordingStatus) -> bool:
        """Replace the stored recording if it is live and in ``expected_status``."""
        with self._lock:
            row = self._rows.get(recording.id)
            if row is None or row.is_deleted or row.status != expected_status:
                return False
            if recording.s3_key != row.s3_key:
                msg = "a recording's storage key never changes"
                raise ValueError(msg)
            self._rows[recording.id] = recording.copy()
            return True

    def find(self, recording_filter: RecordingFilter, *, limit: int, offset: int) -> RecordingPage:
        """Return live recordings matching the filter, newest first, and their total count."""
        with self._lock:
            matching = [row for row in self._rows.values() if recording_filter.matches(row)]
        matching.sort(key=lambda row: (row.created_at, row.id.bytes), reverse=True)
        page = [row.copy() for row in matching[offset : offset + limit]]
        return RecordingPage(items=page, total=len(matching))

    def list_stale_uploads(self, *, now: dt.datetime, limit: int) -> list[Recording]:
        """Return up to ``limit`` live uploading recordings whose deadline is before ``now``."""
        with self._lock:
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
