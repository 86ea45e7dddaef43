"""The transcriber port: what a transcriber is given and what it returns."""

from __future__ import annotations

import io
import math
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, BinaryIO, Final, Protocol, runtime_checkable

import attrs

from helppet_recordings.audio.probe import AudioInfo
from helppet_recordings.audio.reader import DEFAULT_BLOCK_SIZE, RangeReader
from helppet_recordings.transcription._languages import is_language_tag

if TYPE_CHECKING:
    from helppet_recordings.ports import RecordingStorage

__all__ = ["Transcriber", "Transcript", "TranscriptionInput"]

_MAX_SERVICE_LENGTH: Final = 50


def _check_confidence(_instance: object, _attribute: object, value: float | None) -> None:
    if value is not None and not (math.isfinite(value) and 0 <= value <= 1):
        msg = "confidence must be a number from 0 to 1"
        raise ValueError(msg)


def _check_language(_instance: object, _attribute: object, value: str | None) -> None:
    if value is not None and not is_language_tag(value):
        msg = "language must be a language tag such as 'en-US'"
        raise ValueError(msg)


def _check_service(_instance: object, _attribute: object, value: str) -> None:
    if not 1 <= len(value) <= _MAX_SERVICE_LENGTH:
        msg = f"service must be 1 to {_MAX_SERVICE_LENGTH} characters"
        raise ValueError(msg)


@attrs.frozen
class Transcript:
    """The text a transcriber heard, with what the service said about it.

    ``confidence`` is from 0 to 1 when the service gives a meaningful one,
    else None; ``language`` a tag such as ``en`` or ``en-US``, or None;
    ``service`` the transcriber's short name (``local-pocketsphinx``,
    ``openai``, ``aws-transcribe``). The values fit
    ``RecordingService.record_transcript`` as they are.
    """

    text: str
    confidence: float | None = attrs.field(default=None, validator=_check_confidence)
    language: str | None = attrs.field(default=None, validator=_check_language)
    service: str = attrs.field(kw_only=True, validator=_check_service)

    def __repr__(self) -> str:
        # The text is clinical content: keep it out of logs and tracebacks.
        return (
            f"Transcript(text=<{len(self.text)} characters>, confidence={self.confidence!r}, "
            f"language={self.language!r}, service={self.service!r})"
        )


@attrs.frozen
class TranscriptionInput:
    """One recording to transcribe, and everything a transcriber may need to read it.

    - ``recording_id`` and ``cycle`` identify the work: ``cycle`` is the
      recording's round of processing (``Recording.processing_cycle``: 1,
      then one more after each ``reprocess``). A transcriber that starts
      paid jobs (AWS Transcribe) derives the job's name from the two, so a
      retry or a takeover within the round resumes the job instead of paying
      for a second one, and a reprocessed recording gets a new job.
    - ``attempt`` (1 for the first try) counts the tries within the round,
      for logs and backoff.
    - ``open()`` returns a fresh, readable, seekable binary stream of the
      audio, positioned at 0; each call starts a new one and the caller closes
      it. Over storage it is a :class:`~helppet_recordings.audio.RangeReader`,
      so the audio is read in ranges and never held whole; the worker pins
      every read to the verified object (its ETag), so a stream never returns
      bytes of an object that replaced it.
    - ``size`` in bytes and ``mime_type`` as verified at upload.
    - ``s3_uri`` (``s3://bucket/key``), when the audio is in S3, for services
      that read it in place.
    - ``audio``, the measured :class:`~helppet_recordings.audio.AudioInfo`,
      when the worker already inspected the file.
    """

    recording_id: uuid.UUID
    attempt: int = attrs.field(validator=attrs.validators.ge(1))
    opener: Callable[[], BinaryIO] = attrs.field(repr=False)
    size: int = attrs.field(validator=attrs.validators.ge(0))
    mime_type: str
    s3_uri: str | None = None
    audio: AudioInfo | None = None
    cycle: int = attrs.field(default=1, kw_only=True, validator=attrs.validators.ge(1))

    def open(self) -> BinaryIO:
        """Return a new readable, seekable binary stream of the audio, at its start."""
        return self.opener()

    @property
    def duration_seconds(self) -> float | None:
        """The measured duration, when ``audio`` is known."""
        return None if self.audio is None else self.audio.duration_seconds

    @classmethod
    def from_bytes(
        cls,
        data: bytes,
        *,
        mime_type: str,
        recording_id: uuid.UUID | None = None,
        attempt: int = 1,
        cycle: int = 1,
        s3_uri: str | None = None,
        audio: AudioInfo | None = None,
    ) -> TranscriptionInput:
        """Build an input over audio held in memory (tests, scripts, small files)."""
        return cls(
            recording_id=recording_id or uuid.uuid4(),
            attempt=attempt,
            cycle=cycle,
            opener=lambda: io.BytesIO(data),
            size=len(data),
            mime_type=mime_type,
            s3_uri=s3_uri,
            audio=audio,
        )

    @classmethod
    def from_storage(
        cls,
        storage: RecordingStorage,
        *,
        key: str,
        size: int,
        mime_type: str,
        recording_id: uuid.UUID,
        attempt: int,
        cycle: int = 1,
        s3_uri: str | None = None,
        audio: AudioInfo | None = None,
        block_size: int = DEFAULT_BLOCK_SIZE,
        etag: str | None = None,
    ) -> TranscriptionInput:
        """Build an input that reads the object at ``key`` through the storage's ranged reads.

        With ``etag`` (the ETag completion verified) every read is pinned to
        that object (see :meth:`RangeReader.from_storage`): a stream over an
        object that was replaced raises ``UploadVerificationError`` (reason
        ``object_changed``) instead of returning its bytes.
        """
        return cls(
            recording_id=recording_id,
            attempt=attempt,
            cycle=cycle,
            opener=lambda: io.BufferedReader(
                RangeReader.from_storage(storage, key, size, etag=etag, block_size=block_size)
            ),
            size=size,
            mime_type=mime_type,
            s3_uri=s3_uri,
            audio=audio,
        )


@runtime_checkable
class Transcriber(Protocol):
    """Turns one recording's audio into a :class:`Transcript`.

    ``transcribe`` raises ``TransientTranscriptionError`` when the service is
    unavailable for now (the worker retries later, honouring
    ``retry_after``), ``TranscriberConfigurationError`` when the deployment
    is wrong, and ``PermanentTranscriptionError`` or ``AudioDecodeError``
    when this audio can never be transcribed (the worker marks the recording
    ``failed`` with the reason). Implementations are safe to call from one
    thread at a time at least; the bundled ones are thread-safe.
    """

    @property
    def name(self) -> str:
        """The short name stored as the recording's ``transcription_service``."""
        ...

    def transcribe(self, audio: TranscriptionInput) -> Transcript:
        """Return the transcript of ``audio``."""
        ...
