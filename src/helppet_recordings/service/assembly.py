"""Completion and multipart assembly: wait for a concurrent assembly, forget a refused one.

A storage may forget the upload id as soon as a completion starts
assembling the parts, before the object is visible (S3 may answer
``NoSuchUpload`` meanwhile; LocalStorage and InMemoryStorage keep the upload
until the object is stored). A second completion of the same recording in
that window (a client retrying after a lost answer, a double tap) finds
neither the upload nor the object. While the recording is still
``uploading`` with that upload id, that is another completion (or the
sweeper) assembling: this one waits for it, up to
:data:`ASSEMBLY_WAIT_SECONDS`, and answers from what it settled.

An assembled object that verification refuses is removed, and the recording
forgets its upload id first: a later completion then knows at once that
nothing is coming (``UPLOAD_NOT_FOUND``), instead of waiting for an assembly
nobody is doing.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from typing import Final

from helppet_recordings.errors import (
    FileTooLargeError,
    RecordingError,
    RecordingNotFoundError,
    StorageUnavailableError,
    UploadVerificationError,
)
from helppet_recordings.models import Recording
from helppet_recordings.service.changes import Change, ServiceContext, StaleRecording
from helppet_recordings.service.resumable import assemble
from helppet_recordings.status import RecordingStatus

__all__ = [
    "ASSEMBLY_RETRY_AFTER",
    "ASSEMBLY_WAIT_SECONDS",
    "assemble_or_wait",
    "discard_refused_assembly",
    "refuses_bytes",
    "upload_state",
]

ASSEMBLY_WAIT_SECONDS: Final = 20.0
"""How long a completion waits for a concurrent one's assembly before answering 503.

Below the 30 s read timeout of the package's client, and well above the
time LocalStorage takes to assemble the largest upload it accepts by default.
"""

ASSEMBLY_RETRY_AFTER: Final = 5
"""``details.retry_after`` of the 503 answered when the concurrent assembly takes longer."""

_FIRST_PAUSE: Final = 0.05
_LONGEST_PAUSE: Final = 0.5


def assemble_or_wait(ctx: ServiceContext, recording: Recording) -> None:
    """Assemble the upload's parts, or wait while a concurrent completion assembles them.

    Returns when the object is assembled (by this call or another), or
    when what is stored at ``s3_key`` is to decide (a POST upload, an upload
    id the recording forgot). Raises :class:`StaleRecording` when the
    recording moved on meanwhile (the other completion stored its verdict),
    so that it is judged as stored now, and ``STORAGE_UNAVAILABLE`` (503,
    ``details.reason`` ``completion_in_progress``) when the upload is still
    missing after :data:`ASSEMBLY_WAIT_SECONDS`: nothing was refused, retry.

    The wait ends by the monotonic clock or the service's clock, whichever
    passes the limit first (a test's clock can end it without sleeping).
    """
    started, started_at = time.monotonic(), ctx.now()
    pause = _FIRST_PAUSE
    while not assemble(ctx, recording):
        current = ctx.repository.get(recording.id)
        if current is None or upload_state(current) != upload_state(recording):
            raise StaleRecording
        if ctx.storage.head(recording.s3_key) is not None:
            return  # assembled by the other party: verified here as well, one save wins
        waited = max(time.monotonic() - started, (ctx.now() - started_at).total_seconds())
        if waited >= ASSEMBLY_WAIT_SECONDS:
            raise StorageUnavailableError(
                "Another completion of this upload is still assembling its parts; retry later",
                retry_after=ASSEMBLY_RETRY_AFTER,
                reason="completion_in_progress",
                recording_id=str(recording.id),
            )
        time.sleep(min(pause, ASSEMBLY_WAIT_SECONDS - waited))
        pause = min(pause * 2, _LONGEST_PAUSE)


def upload_state(recording: Recording) -> tuple[object, ...]:
    """Return what a completion's verdict on the bytes rests on.

    A completion, a deletion, an expiry or a restarted (or forgotten)
    multipart upload changes it; a renewal's new deadline (or a sweeper's
    claim) does not: the verdict stands, and the deadline is read from the
    stored copy.
    """
    return (
        recording.status,
        recording.is_deleted,
        recording.verified_at,
        recording.upload_key,
        recording.multipart_upload_id,
    )


def refuses_bytes(exc: RecordingError) -> bool:
    """Whether a completion error is a verdict on the stored bytes.

    Only verification's verdicts are: missing parts, a race, or storage refusing
    to read (a permission, an expired token) say nothing about the audio, and
    deleting the assembled object would lose every part for good.
    """
    if not isinstance(exc, UploadVerificationError | FileTooLargeError):
        return False
    return exc.details.get("reason") != "changed_during_verification"


def discard_refused_assembly(ctx: ServiceContext, recording: Recording) -> None:
    """Remove a refused assembled object, after the recording forgot its upload id.

    Storage forgot the id when it assembled the parts; the recording
    forgetting it too tells later completions that no assembly is under
    way, and ``sign_upload_parts`` starts a new upload. The id is forgotten
    first: should the removal fail, the object stays to be refused again.
    """
    upload_id = recording.multipart_upload_id

    def forget(current: Recording, now: dt.datetime) -> Change | None:
        if (
            current.status is not RecordingStatus.UPLOADING
            or current.multipart_upload_id is None
            or current.multipart_upload_id != upload_id
        ):
            return None
        return Change(current.copy(multipart_upload_id=None, updated_at=now), None)

    if upload_id is not None:
        # Deleted meanwhile: nothing to forget, and the deletion frees what storage holds.
        with contextlib.suppress(RecordingNotFoundError):
            ctx.change(recording.id, forget)
    ctx.storage.delete(recording.s3_key)
