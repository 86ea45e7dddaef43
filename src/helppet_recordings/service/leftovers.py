"""What storage keeps of uploads that went nowhere: freeing one, finding the abandoned.

``discard_upload`` frees what a failed or deleted upload left at its key;
``unfinished_uploads`` and ``abort_orphan_uploads`` find and abort the
multipart uploads no live upload waits for (the sweeper and ``reconcile``).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable

from helppet_recordings.errors import RecordingError
from helppet_recordings.models import Recording
from helppet_recordings.ports import MultipartStorage
from helppet_recordings.service.admission import upload_deadline
from helppet_recordings.service.changes import ServiceContext
from helppet_recordings.service.resumable import multipart_storage
from helppet_recordings.status import RecordingStatus

__all__ = ["abort_orphan_uploads", "discard_upload", "unfinished_uploads"]

_logger = logging.getLogger("helppet_recordings.uploads")


def discard_upload(ctx: ServiceContext, recording: Recording) -> None:
    """After an upload failed or was deleted unverified: free what storage holds at ``s3_key``.

    Aborts a multipart upload and removes an assembled object that was never
    verified, or the unverified bytes a ticket naming ``s3_key`` left there.
    Best effort: a storage error is logged, and the sweeper's pass over
    unfinished uploads (or ``reconcile``) catches what is left.
    """
    if recording.verified_at is not None:
        return
    if recording.uploads_in_place:
        try:
            ctx.storage.delete(recording.s3_key)
        except RecordingError:
            _logger.warning("Could not remove the unverified upload of recording %s", recording.id)
        return
    if recording.multipart_size_bytes is None:
        return
    storage = multipart_storage(ctx)
    try:
        if recording.multipart_upload_id is not None:
            storage.abort_multipart_upload(
                key=recording.s3_key, upload_id=recording.multipart_upload_id
            )
        ctx.storage.delete(recording.s3_key)
    except RecordingError:
        _logger.warning("Could not free the multipart upload of recording %s", recording.id)


def unfinished_uploads(
    ctx: ServiceContext, *, now: dt.datetime
) -> Iterable[tuple[str, str, Recording | None]]:
    """Yield ``(key, upload id, recording)`` of unfinished uploads no live upload waits for.

    Only uploads started before the upload deadline's span ago count; the
    recording is the one owning the key, if any. Storage without multipart
    support has none.
    """
    storage = ctx.storage
    if not isinstance(storage, MultipartStorage):
        return
    started_before = now - (upload_deadline(ctx, now) - now)
    for info in storage.list_multipart_uploads(prefix=ctx.settings.s3_recordings_prefix):
        if info.initiated >= started_before:
            continue
        owner = ctx.at_key(info.key)
        waiting = (
            owner is not None
            and not owner.is_deleted
            and owner.status is RecordingStatus.UPLOADING
            and owner.multipart_upload_id == info.upload_id
        )
        if not waiting:
            yield info.key, info.upload_id, owner


def abort_orphan_uploads(ctx: ServiceContext, *, now: dt.datetime) -> int:
    """Abort every unfinished upload no live upload waits for; return how many."""
    storage = ctx.storage
    aborted = 0
    for key, upload_id, _ in list(unfinished_uploads(ctx, now=now)):
        if isinstance(storage, MultipartStorage):
            storage.abort_multipart_upload(key=key, upload_id=upload_id)
            aborted += 1
    return aborted
