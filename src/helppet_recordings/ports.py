"""The two ports the service talks to: object storage and the recordings repository.

Backends implement these protocols structurally; they need not inherit from
them. Every backend runs the shared contract suites in :mod:`helppet_recordings.testing`
(``StorageContract``, ``RepositoryContract`` and the capabilities' own).
The optional storage capabilities (``EncryptionChecking``, ``HeadAndRead``,
``PinnedReads``, ``ChecksumPinning``) live in
:mod:`helppet_recordings.storage_capabilities` and are exported from here too.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator, Sequence
from typing import Protocol, runtime_checkable

from helppet_recordings.audit import AuditEntry
from helppet_recordings.models import (
    MultipartUploadInfo,
    Recording,
    RecordingFilter,
    RecordingPage,
    StoredObject,
    StoredPart,
    UploadTicket,
)
from helppet_recordings.stats import RepositoryStats
from helppet_recordings.status import RecordingStatus
from helppet_recordings.storage_capabilities import (
    ChecksumPinning,
    EncryptionChecking,
    HeadAndRead,
    PinnedReads,
)

__all__ = [
    "ChecksumPinning",
    "EncryptionChecking",
    "HeadAndRead",
    "MultipartStorage",
    "PinnedReads",
    "RecordingRepository",
    "RecordingStorage",
]


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

    def read_range(self, key: str, *, offset: int, length: int) -> bytes | None:
        """Return up to ``length`` bytes of the object at ``key``, starting at ``offset``.

        Fewer bytes come back where the object ends (none at or past its end);
        None when storage holds no such object. ``offset`` is at least 0 and
        ``length`` at least 1.
        """
        ...

    def promote(
        self, source_key: str, target_key: str, *, expected: StoredObject
    ) -> StoredObject | None:
        """Move the object at ``source_key`` to ``target_key`` if it is still ``expected``.

        Completion moves a verified upload from the staging key its ticket
        names to a final key no ticket names. The check and the move are one
        step: when the source is gone or no longer has ``expected``'s ETag and
        size (a replayed upload), nothing moves and the result is None.
        Otherwise the bytes, type and encryption land at ``target_key``, the
        source is removed, and the target is returned as :meth:`head` reports it.
        The object is never at neither key: a reader that finds the source gone
        finds the target (a concurrent completion looks in that order).
        """
        ...

    def delete(self, key: str) -> None:
        """Remove the object at ``key``; removing a missing object is not an error."""
        ...

    def iter_objects(self, prefix: str) -> Iterator[StoredObject]:
        """Yield every object whose key starts with ``prefix``, in ascending key order.

        Keys compare as strings (code point order, which is S3's UTF-8 byte order).
        """
        ...


@runtime_checkable
class MultipartStorage(Protocol):
    """A storage that takes an object in numbered parts (resumable uploads).

    Parts are planned by :func:`helppet_recordings.multipart.plan_parts`:
    every part but the last at least 5 MiB, at most 10,000 parts. Methods
    raise ``StorageError`` with ``details["storage_error"] == "NoSuchUpload"``
    for an upload id storage does not know (never started, completed or
    aborted), ``StorageUnavailableError`` when storage cannot be reached.
    """

    def create_multipart_upload(self, *, key: str, content_type: str) -> str:
        """Start a multipart upload of ``key`` and return its upload id.

        The content type and the encryption of the object completion will
        assemble are fixed here; the parts carry neither.
        """
        ...

    def sign_upload_part(
        self, *, key: str, upload_id: str, part_number: int, size: int, expires_in: int
    ) -> str:
        """Return a URL a client sends part ``part_number`` to with ``PUT``, for ``expires_in`` s.

        Storage refuses a body of any length but ``size`` and keeps nothing
        of it. Sending a part again replaces it.
        """
        ...

    def list_parts(self, *, key: str, upload_id: str) -> list[StoredPart]:
        """Return every part storage holds for the upload, one per part number, in order."""
        ...

    def complete_multipart_upload(
        self, *, key: str, upload_id: str, parts: Sequence[tuple[int, str]]
    ) -> StoredObject:
        """Assemble ``key`` from ``(part number, ETag)`` pairs taken from :meth:`list_parts`.

        Returns the assembled object as :meth:`RecordingStorage.head` reports
        it; the upload id is gone afterwards.
        """
        ...

    def abort_multipart_upload(self, *, key: str, upload_id: str) -> None:
        """Abort the upload and free its parts; an upload already gone is not an error."""
        ...

    def list_multipart_uploads(self, *, prefix: str) -> list[MultipartUploadInfo]:
        """Return every unfinished upload whose key starts with ``prefix``."""
        ...


@runtime_checkable
class RecordingRepository(Protocol):
    """Where recordings are kept.

    Implementations are thread-safe. ``save`` is a compare-and-set on the
    status, so two racing writers cannot both move one recording. Methods
    raise ``RepositoryUnavailableError`` when the store cannot be reached.
    """

    def add(self, recording: Recording) -> None:
        """Store a new recording.

        Raise ``DuplicateRecordingError`` (a ``RecordingError`` and a
        ``ValueError``) if its id, its key, or its owner's idempotency key is
        already used.
        """
        ...

    def get(self, recording_id: uuid.UUID) -> Recording | None:
        """Return the recording with this id, soft-deleted ones included, or None."""
        ...

    def save(
        self,
        recording: Recording,
        *,
        expected_status: RecordingStatus,
        previous: Recording | None = None,
        expected_lease: dt.datetime | None = None,
    ) -> bool:
        """Write ``recording`` if the stored one is live and in ``expected_status``.

        Without ``previous`` every field is written. With ``previous`` (the
        recording as it was loaded, before the change) only the status and
        the fields that differ from it are written, so a concurrent change to
        other fields (a worker's lease) survives. With ``expected_lease``, the
        stored ``lease_expires_at`` must also be exactly that (the claim of
        the worker writing). A write with ``previous`` that changes
        ``multipart_upload_id`` lands only while the stored one is still
        ``previous``'s (two renewals that each started a new multipart upload
        cannot both land). Return False, changing nothing, when the stored
        recording is missing, soft-deleted, in another status, under another
        lease or with another upload id (another writer got there first). A
        recording whose storage key or idempotency key differs from the
        stored one's (or from ``previous``'s) raises ``ValueError``.

        A repository that can also store an audit entry in the write's
        transaction takes ``audit=`` here and in :meth:`mark_purged`
        (:class:`~helppet_recordings.audited_writes.AuditedWrites`).
        """
        ...

    def find(self, recording_filter: RecordingFilter, *, limit: int, offset: int) -> RecordingPage:
        """Return live recordings matching the filter, newest first, and their total count."""
        ...

    def find_page(
        self,
        recording_filter: RecordingFilter,
        *,
        limit: int,
        after: tuple[dt.datetime, uuid.UUID] | None = None,
    ) -> RecordingPage:
        """Return up to ``limit`` live recordings matching the filter after ``after``, newest first.

        ``after`` is the ``(created_at, id)`` of the last recording of the
        previous page (None for the first): keyset paging, so a deep page
        costs what the first does. ``total`` counts every match.
        """
        ...

    def list_stale_uploads(self, *, now: dt.datetime, limit: int) -> list[Recording]:
        """Return up to ``limit`` live uploading recordings whose deadline is before ``now``."""
        ...

    def claim_stale_uploads(
        self, *, now: dt.datetime, limit: int, lease_until: dt.datetime
    ) -> list[Recording]:
        """Atomically take up to ``limit`` stale uploads for one sweeper, oldest deadline first.

        Claiming moves each one's ``upload_expires_at`` to ``lease_until`` (after
        ``now``), so a concurrent sweeper does not take it too; should this
        sweeper die, the recording is stale again once the lease runs out. Its
        ``lease_expires_at`` becomes ``lease_until`` too: the sweeper's claim,
        which a renewal clears. Returns the recordings as they were claimed.
        """
        ...

    def claim_work(
        self, *, now: dt.datetime, limit: int, lease_until: dt.datetime
    ) -> list[Recording]:
        """Atomically take up to ``limit`` recordings for one transcription worker.

        A recording is ready when it is live, ``uploaded`` or ``processing``,
        and its ``lease_expires_at`` is at or before ``now`` (an ``uploaded``
        one is ready from its verification on, or after a retry's wait; a
        ``processing`` one when its worker's claim ran out; one without a
        lease is never taken). Claiming sets ``lease_expires_at`` to
        ``lease_until``, so concurrent workers take disjoint recordings; the
        status does not change. Oldest lease first. Returns them as claimed.
        """
        ...

    def find_by_upload_key(self, key: str) -> Recording | None:
        """Return the recording whose upload ticket names staging ``key`` (deleted ones too)."""
        ...

    def find_by_idempotency_key(self, user_id: uuid.UUID, key: str) -> Recording | None:
        """Return the user's recording created with this idempotency key, deleted ones included."""
        ...

    def list_by_key(self, *, prefix: str, after: str | None, limit: int) -> list[Recording]:
        """Return up to ``limit`` recordings whose key starts with ``prefix``, by ascending key.

        Only keys greater than ``after`` (when given) are returned, so a caller
        can walk every key in pages. Keys compare in code point order. Deleted
        recordings are included.
        """
        ...

    def list_purgeable(self, *, deleted_before: dt.datetime, limit: int) -> list[Recording]:
        """Return up to ``limit`` soft-deleted, not yet purged recordings deleted before then."""
        ...

    def mark_purged(self, recording: Recording) -> bool:
        """Write a scrubbed copy of a soft-deleted recording, setting ``purged_at``.

        Returns False, changing nothing, unless the stored recording is
        soft-deleted and not yet purged.
        """
        ...

    def record_audit(self, entry: AuditEntry) -> None:
        """Append ``entry`` to its recording's audit trail (durably, before returning).

        The trail is append-only: no method of the port changes or removes an
        entry, and purging a recording leaves its trail as it is.
        """
        ...

    def audit_trail(self, recording_id: uuid.UUID) -> list[AuditEntry]:
        """Return every audit entry of the recording, oldest first (ties in the order written).

        An unknown recording has an empty trail.
        """
        ...

    def stats(self, *, since: dt.datetime | None, until: dt.datetime | None) -> RepositoryStats:
        """Return the statistics of the recordings created at or after ``since``, before ``until``.

        Either bound may be None (open). Soft-deleted and purged recordings
        count; one deleted while ``uploading`` counts as ``failed``
        (:func:`~helppet_recordings.stats.counted_status`). See
        :mod:`helppet_recordings.stats` for what each figure is;
        a database backend computes them with aggregates, not by reading rows.
        """
        ...
