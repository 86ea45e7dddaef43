"""Optional storage capabilities: what a storage may do beyond ``RecordingStorage``.

Each is a protocol of its own, checked with ``isinstance`` where it is used;
a storage without one still works. Backends implement them structurally, as
they do the ports in :mod:`helppet_recordings.ports`, which exports these
too. ``PinnedReads`` and ``ChecksumPinning`` have contract suites in
:mod:`helppet_recordings.testing`.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from helppet_recordings.models import StoredObject, UploadTicket

__all__ = ["ChecksumPinning", "EncryptionChecking", "HeadAndRead", "PinnedReads"]


@runtime_checkable
class EncryptionChecking(Protocol):
    """A storage that encrypts objects at rest and can say whether one is encrypted as required.

    Optional: ``S3Storage`` and ``InMemoryStorage`` have it (AES256, or
    SSE-KMS with the configured key); without it, completion accepts only
    AES256 where storage reports an encryption at all.
    """

    def encryption_matches(self, stored: StoredObject) -> bool:
        """Whether ``stored`` is encrypted as uploads must be."""
        ...


@runtime_checkable
class HeadAndRead(Protocol):
    """A storage that reports an object and reads its first bytes in one request.

    Optional: ``S3Storage`` has it (one ranged GET instead of a HEAD and a
    GET); completion uses it where it needs no checksum, else ``head`` and
    ``read_range``.
    """

    def head_and_read(self, key: str, *, length: int) -> tuple[StoredObject, bytes] | None:
        """Return ``head``'s report (no checksums) and the first ``length`` bytes, or None."""
        ...


@runtime_checkable
class PinnedReads(Protocol):
    """A storage whose ranged reads can be pinned to one object: the one with a given ETag.

    Optional. The transcription worker reads verified audio only through it
    where storage has it: each ranged read names the ETag completion
    verified, and storage answers only from that object, in the same step,
    so a replacement (same size or not) is never read as the recording.
    ``S3Storage`` (``GetObject`` with ``IfMatch``, and the answer's own ETag
    checked, for servers that ignore the condition), ``LocalStorage`` and
    ``InMemoryStorage`` have it. A storage without it still works: the
    worker then asks ``head`` after each read, which leaves a window (an
    object replaced and put back between the read and the ``head`` is not
    seen).
    """

    def read_pinned(self, key: str, *, etag: str, offset: int, length: int) -> bytes | None:
        """Return what ``read_range`` returns, from the object at ``key`` only if it has ``etag``.

        ``etag`` is as :meth:`RecordingStorage.head` reports it (no quotes).
        None when storage holds no object at ``key``, or one with another ETag;
        the check and the read are one step (a conditional read, or a read
        from the very file or value whose ETag was compared).
        """
        ...


@runtime_checkable
class ChecksumPinning(Protocol):
    """A storage whose upload tickets can pin the body's SHA-256.

    Optional. A ticket signed with ``sha256`` (64 hex characters) is refused
    by storage for any body with another digest, so every use of it can only
    ever write the same bytes. Where ``pins_checksums`` is True, identical
    bytes written again also keep the ``ETag`` they had, and the service lets
    such tickets name the final key ``s3_key`` directly: no staging key and no
    server-side copy at completion, and a replay cannot change the audio.
    ``S3Storage`` (SSE-S3), ``LocalStorage`` and ``InMemoryStorage`` have it;
    ``S3Storage`` with SSE-KMS (whose ETag changes on every write) or
    ``checksum_tickets=False`` answers False.
    """

    @property
    def pins_checksums(self) -> bool:
        """Whether pinned tickets may name the final key (see the class)."""
        ...

    def create_upload(
        self,
        *,
        key: str,
        content_type: str,
        max_size: int,
        expires_in: int,
        sha256: str | None = None,
    ) -> UploadTicket:
        """Sign an upload as ``RecordingStorage.create_upload``, pinning ``sha256`` if given."""
        ...
