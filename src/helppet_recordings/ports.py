"""The two ports the service talks to: object storage and the recordings repository.

Backends implement these protocols structurally; they need not inherit from
them. Every backend runs the shared contract suites in ``tests/contract``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from typing import Protocol, runtime_checkable

from helppet_recordings.models import (
    Recording,
    RecordingFilter,
    RecordingPage,
    StoredObject,
    UploadTicket,
)
from helppet_recordings.status import RecordingStatus

__all__ = ["RecordingRepository", "RecordingStorage"]


@runtime_checkable
class RecordingStorage(Protocol):
    """Where audio objects live, and how clients reach them directly.

    Methods that talk to a server raise ``StorageUnavailableError`` when it
    cannot be reached (retryable) and ``StorageError`` when it refuses.
    """

    @property
    def bucket(self) -> str:
        """The bucket (or its equivalent) that keys live in."""
        ...

    def create_upload(
        self, *, key: str, content_type: str, max_size: int, expires_in: int
    ) -> UploadTicket:
        """Sign an upload of exactly one object at ``key``.

        The ticket's policy pins the key, the exact content type,
        server-side encryption, a size of 1 to ``max_size`` bytes and an
        expiry ``expires_in`` seconds from now.
        """
        ...

    def create_download_url(
        self, *, key: str, expires_in: int, content_type: str, filename: str
    ) -> str:
        """Sign a URL that reads ``key`` for ``expires_in`` seconds.

        The response carries ``content_type`` and an attachment disposition
        naming ``filename``.
        """
        ...

    def object_url(self, key: str) -> str:
        """Return a stable, unsigned URI naming the object (for records, not for access)."""
        ...

    def head(self, key: str) -> StoredObject | None:
        """Return what storage knows about ``key``, or None when it holds no such object."""
        ...

    def delete(self, key: str) -> None:
        """Remove the object at ``key``; removing a missing object is not an error."""
        ...

    def iter_objects(self, prefix: str) -> Iterator[StoredObject]:
        """Yield every object whose key starts with ``prefix``."""
        ...


@runtime_checkable
class RecordingRepository(Protocol):
    """Where recordings are kept.

    Implementations are thread-safe. ``save`` is a compare-and-set on the
    status, so two racing writers cannot both move one recording. Methods
    raise ``RepositoryUnavailableError`` when the store cannot be reached.
    """

    def add(self, recording: Recording) -> None:
        """Store a new recording; raise ``ValueError`` if its id or key already exists."""
        ...

    def get(self, recording_id: uuid.UUID) -> Recording | None:
        """Return the recording with this id, soft-deleted ones included, or None."""
        ...

    def save(self, recording: Recording, *, expected_status: RecordingStatus) -> bool:
        """Write every field of ``recording`` if the stored one is live and in ``expected_status``.

        Return False, changing nothing, when the stored recording is missing,
        soft-deleted or in another status (another writer got there first).
        """
        ...

    def find(self, recording_filter: RecordingFilter, *, limit: int, offset: int) -> RecordingPage:
        """Return live recordings matching the filter, newest first, and their total count."""
        ...

    def list_stale_uploads(self, *, now: dt.datetime, limit: int) -> list[Recording]:
        """Return up to ``limit`` live uploading recordings whose deadline is before ``now``."""
        ...
