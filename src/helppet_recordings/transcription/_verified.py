"""The worker's guard on the verified audio: what it reads, and when it trusts a transcript.

Completion verified one object (its size, and the ETag it recorded). The
worker reads only that object: every read of the :class:`TranscriptionInput`
it builds (:func:`verified_input`) is pinned to the verified ETag, so bytes
that reached the key later are refused (``UploadVerificationError``, reason
``object_changed``) instead of read as the recording. A transcriber that
reads the object itself, not through ``open()`` (Amazon Transcribe reads the
``s3://`` URI), cannot be pinned: :func:`transcribe_verified` asks storage
with a ``head`` before it gets the recording and again once its transcript is
back, and either check that finds another object, or none, fails the
recording. The second check comes after a paid transcription: a storage
outage there is asked again a few times, shortly, before the attempt is
given up (and the transcript with it).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from helppet_recordings.errors import StorageUnavailableError, UploadVerificationError
from helppet_recordings.service.verification import unverified_reason
from helppet_recordings.transcription._failures import logger as _logger
from helppet_recordings.transcription.base import Transcriber, Transcript, TranscriptionInput

if TYPE_CHECKING:
    from helppet_recordings.models import Recording
    from helppet_recordings.ports import RecordingStorage

__all__ = [
    "confirm_after_transcription",
    "confirm_before_transcription",
    "transcribe_verified",
    "verified_input",
]

_UNKNOWN_MIME_TYPE: Final = "application/octet-stream"
_NOT_TRANSCRIBED: Final = (
    "The stored audio is no longer the verified recording; it is not transcribed"
)
_DISCARDED: Final = (
    "The stored audio is no longer the verified recording after it was transcribed; "
    "the transcript is discarded"
)
AFTER_CHECKS: Final = 4
"""How many times storage is asked after a transcription while it is unavailable."""
AFTER_WAIT_INITIAL: Final = 0.25
"""The wait before the second ask, in seconds; it doubles, times a random 0.5 to 1."""


def verified_input(
    storage: RecordingStorage, recording: Recording, *, attempt: int
) -> TranscriptionInput:
    """Return the input of one attempt at ``recording``: every read pinned to the verified object.

    A recording without a verified size raises ``UploadVerificationError``
    (reason ``size_unknown``): there is nothing to hold the object to.
    """
    size = recording.file_size_bytes
    if size is None:
        raise UploadVerificationError("The recording has no verified size", reason="size_unknown")
    url = storage.object_url(recording.s3_key)
    return TranscriptionInput.from_storage(
        storage,
        key=recording.s3_key,
        size=size,
        mime_type=recording.mime_type or _UNKNOWN_MIME_TYPE,
        recording_id=recording.id,
        attempt=attempt,
        cycle=recording.processing_cycle,
        s3_uri=url if url.startswith("s3://") else None,
        etag=recording.verified_etag,  # every read the worker and transcriber make: pinned
    )


def transcribe_verified(
    storage: RecordingStorage,
    recording: Recording,
    transcriber: Transcriber,
    source: TranscriptionInput,
    *,
    ended: Callable[[float], None],
    rng: random.Random,
) -> tuple[Transcript, float]:
    """Transcribe ``source`` only while storage holds the verified object; return how long it took.

    Storage is asked before the transcriber gets the recording (a changed
    object is not transcribed) and again once its transcript is back (a
    change in between discards the transcript): both raise
    ``UploadVerificationError``. When the transcriber raised, or its
    transcript is discarded, ``ended`` is given its time before the error
    is raised again. ``rng`` is the jitter of the second check's retries
    (:func:`confirm_after_transcription`).
    """
    confirm_before_transcription(storage, recording)
    started = time.perf_counter()
    try:
        transcript = transcriber.transcribe(source)
    except Exception:
        ended(time.perf_counter() - started)
        raise
    seconds = time.perf_counter() - started
    try:
        confirm_after_transcription(storage, recording, rng=rng)
    except Exception:
        ended(seconds)  # the transcript is discarded: timed as it ends
        raise
    return transcript, seconds


def confirm_before_transcription(storage: RecordingStorage, recording: Recording) -> None:
    """Raise ``UploadVerificationError`` unless storage holds the verified object now."""
    _confirm(storage, recording, _NOT_TRANSCRIBED)


def confirm_after_transcription(
    storage: RecordingStorage, recording: Recording, *, rng: random.Random
) -> None:
    """Raise ``UploadVerificationError`` unless storage still holds the verified object.

    Called once the transcript is back, before it is stored: a change while
    the transcriber ran discards the transcript. The transcript is paid for
    (and Amazon Transcribe's job already deleted), so storage that is
    unavailable (``STORAGE_UNAVAILABLE``) is asked again, up to
    :data:`AFTER_CHECKS` times in all, waiting :data:`AFTER_WAIT_INITIAL`
    seconds, doubling, with jitter (under 2 s in all), before its error is
    raised: a blip does not throw the transcript away.
    """
    for check in range(1, AFTER_CHECKS + 1):
        try:
            _confirm(storage, recording, _DISCARDED)
        except StorageUnavailableError as exc:
            if check == AFTER_CHECKS:
                raise
            wait = AFTER_WAIT_INITIAL * 2 ** (check - 1) * (0.5 + 0.5 * rng.random())
            _logger.warning(
                "Recording %s attempt %d: storage did not answer the check after the "
                "transcription (%s); asking again in %.2f s",
                recording.id,
                recording.processing_attempts,
                exc.error_code,
                wait,
            )
            time.sleep(wait)
        else:
            return


def _confirm(storage: RecordingStorage, recording: Recording, message: str) -> None:
    reason = unverified_reason(recording, storage.head(recording.s3_key))
    if reason is not None:
        raise UploadVerificationError(message, reason=reason)
