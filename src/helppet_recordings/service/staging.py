"""Settling a staged upload: verify it, check its audio signature, move it to its final key.

Completion and the sweeper share this. Upload tickets name a staging key; the
verified object moves to ``s3_key``, which no such ticket names, so a replayed
ticket can never change verified audio. Tickets that pin the declared SHA-256
name ``s3_key`` itself: storage takes no other bytes there, so the object is
verified where it is (see ``docs/security.md``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import attrs

from helppet_recordings import events
from helppet_recordings.errors import UploadVerificationError
from helppet_recordings.models import Recording, StoredObject
from helppet_recordings.ports import RecordingStorage
from helppet_recordings.service.changes import Change, ServiceContext
from helppet_recordings.service.verification import (
    check_audio_signature,
    checksum_status,
    verify_upload,
)
from helppet_recordings.sniffing import SNIFF_BYTES
from helppet_recordings.status import RecordingStatus
from helppet_recordings.storage_capabilities import EncryptionChecking, HeadAndRead

__all__ = ["completed_attributes", "expire_upload", "promote_upload", "verified_and_moved"]


def expire_upload(
    ctx: ServiceContext,
    recording: Recording,
    reason: str,
    at: dt.datetime,
    *,
    claim: dt.datetime | None = None,
) -> bool:
    """Fail an ``uploading`` recording whose deadline passed; False if it had moved on.

    ``claim`` is the sweeper's: a renewal (a new ticket, a new deadline) ends
    it, so an upload renewed while the sweeper looked at it stays uploading.
    Without a claim the recording is read again and failed only if its
    deadline, as stored now, has passed: a renewal in the meantime keeps it.
    """

    def expire(current: Recording, now: dt.datetime) -> Change | None:
        if current.status is not RecordingStatus.UPLOADING:
            return None
        if claim is not None and current.lease_expires_at != claim:
            return None  # renewed (a new deadline) since the sweeper found it stale
        deadline = current.upload_expires_at
        if claim is None and deadline is not None and now <= deadline:
            return None  # renewed since the caller found it late (a claim moves the deadline)
        return Change(current.expire_upload(now, reason=reason), events.UPLOAD_EXPIRED)

    loaded = recording if claim is not None else None  # the claim vouches for the copy
    return ctx.change(recording.id, expire, loaded=loaded, at=at, write=ctx.claimed(claim)).changed


def completed_attributes(recording: Recording, by: str) -> dict[str, events.AttributeValue]:
    """Return the ``upload.completed`` event's attributes (``by``: client or sweeper)."""
    return {
        "by": by,
        "upload_seconds": (recording.updated_at - recording.created_at).total_seconds(),
        "size_bytes": recording.file_size_bytes,
        "mime_type": recording.mime_type,
        "duration_seconds": recording.duration_seconds,
    }


def promote_upload(ctx: ServiceContext, recording: Recording, at: dt.datetime) -> bool:
    """Verify and move an upload whose completion call never came (the sweeper).

    Raises the verification's error when the stored object is refused.
    """

    def promote(current: Recording, now: dt.datetime) -> Change | None:
        if current.status is not RecordingStatus.UPLOADING:
            return None
        uploaded = verified_and_moved(ctx, current, now, declared_size=None)
        return Change(uploaded, events.UPLOAD_COMPLETED, completed_attributes(uploaded, "sweeper"))

    return ctx.change(recording.id, promote, loaded=recording, at=at).changed


def verified_and_moved(
    ctx: ServiceContext,
    recording: Recording,
    now: dt.datetime,
    *,
    declared_size: int | None,
    duration_seconds: float | None = None,
    metadata: dict[str, Any] | None = None,
) -> Recording:
    """Verify the staged upload, check its audio signature, move it to its final key.

    Returns the recording marked ``uploaded`` with what storage confirmed.
    Raises the contract's error when the object is refused (it stays where
    it is; the recording stays ``uploading``). An object already at the
    final key with nothing left at the staging key was moved by an earlier
    attempt whose save did not happen (or by a concurrent completion): no
    ticket names the final key, so it is verified where it is.
    """
    for _ in range(2):
        outcome = _try_verify_and_move(ctx, recording, declared_size=declared_size)
        if outcome is not None:
            final, confirmed = outcome
            return recording.mark_uploaded(
                now,
                size=final.size,
                md5=final.md5,
                sha256=final.sha256,
                etag=final.etag,
                checksum_status=confirmed,
                duration_seconds=duration_seconds,
                metadata=metadata,
            )
        # The staged object went away between two looks: a concurrent completion moved
        # it (then it is verified at its final key on the second pass) or a replay is
        # landing; either way, look again once.
    raise UploadVerificationError(
        "The uploaded file changed while it was verified; complete again",
        recording_id=str(recording.id),
        reason="changed_during_verification",
    )


def _try_verify_and_move(
    ctx: ServiceContext, recording: Recording, *, declared_size: int | None
) -> tuple[StoredObject, str | None] | None:
    """One pass of :func:`_verified_and_moved`: the final object and the checksum status.

    None when the staged object changed or vanished during the pass.
    """
    storage = ctx.storage
    staging_key = recording.staging_key
    source = staging_key or recording.s3_key
    found, head = _look(storage, recording, source)
    moved_before = False
    if found is None and staging_key is not None:
        found, head = _look(storage, recording, recording.s3_key)
        moved_before = found is not None
    if found is not None and recording.uploads_in_place:
        # Its tickets pinned the declared SHA-256 and storage refused any other body,
        # so storage confirmed it when the bytes were written.
        found = attrs.evolve(found, sha256=recording.content_sha256)
    where = recording.s3_key if moved_before else source
    stored = verify_upload(
        recording,
        found,
        max_size=ctx.settings.max_file_size,
        declared_size=declared_size,
        encryption_matches=(
            storage.encryption_matches if isinstance(storage, EncryptionChecking) else None
        ),
    )
    if head is None:
        head = storage.read_range(where, offset=0, length=SNIFF_BYTES)
        if head is None:
            return None
    check_audio_signature(recording, head)
    final = stored
    if staging_key is not None and not moved_before:
        moved = storage.promote(source, recording.s3_key, expected=stored)
        if moved is None:
            return None
        final = moved
    return final, checksum_status(recording, stored)


def _look(
    storage: RecordingStorage, recording: Recording, key: str
) -> tuple[StoredObject | None, bytes | None]:
    """Return the object at ``key`` and, where one request tells both, its first bytes.

    That request reports no checksums, so an upload with a declared SHA-256
    is HEADed (its first bytes are read after verification), unless its
    tickets pinned that SHA-256.
    """
    needs_checksum = recording.content_sha256 is not None and not recording.uploads_in_place
    if isinstance(storage, HeadAndRead) and not needs_checksum:
        both = storage.head_and_read(key, length=SNIFF_BYTES)
        return (None, None) if both is None else both
    return storage.head(key), None
