"""Speech to text for uploaded recordings: the transcriber port and three backends.

::

    from helppet_recordings.transcription import get_transcriber, TranscriptionInput

    transcriber = get_transcriber("local")          # or "openai", "aws"
    transcript = transcriber.transcribe(TranscriptionInput.from_bytes(data, mime_type="audio/flac"))

- :class:`Transcriber` is the protocol; :class:`Transcript` its result;
  :class:`TranscriptionInput` what it reads.
- :class:`LocalTranscriber` (extra ``local-transcriber``) runs PocketSphinx
  offline with the English model its wheel ships; nothing is downloaded.
- :class:`OpenAITranscriber` (extra ``openai``) calls OpenAI's transcription
  API, cutting long audio at pauses into requests under its size limit.
- :class:`AwsTranscribeTranscriber` (extra ``aws``) runs an Amazon Transcribe
  job on the object where it lies in S3.
- :class:`TranscriptionWorker` takes verified uploads through a
  ``RecordingService``, measures their audio and stores their transcripts,
  retrying what failed for now and failing what never will.

The backends are imported on first use, so importing this package needs none
of their libraries; using one without its extra raises
``MissingDependencyError`` naming the extra. Errors are described in
:mod:`helppet_recordings.transcription.errors`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from helppet_recordings._lazy import lazy_exports
from helppet_recordings.transcription.base import Transcriber, Transcript, TranscriptionInput
from helppet_recordings.transcription.errors import (
    PermanentTranscriptionError,
    TranscriberConfigurationError,
    TranscriptionError,
    TransientTranscriptionError,
)
from helppet_recordings.transcription.registry import (
    available_transcribers,
    get_transcriber,
    register_transcriber,
)
from helppet_recordings.transcription.samples import SpeechSample, speech_sample
from helppet_recordings.transcription.worker import TranscriptionWorker

if TYPE_CHECKING:
    from helppet_recordings.transcription.aws import AwsTranscribeTranscriber
    from helppet_recordings.transcription.local import LocalTranscriber
    from helppet_recordings.transcription.openai import OpenAITranscriber

__all__ = [
    "AwsTranscribeTranscriber",
    "LocalTranscriber",
    "OpenAITranscriber",
    "PermanentTranscriptionError",
    "SpeechSample",
    "Transcriber",
    "TranscriberConfigurationError",
    "Transcript",
    "TranscriptionError",
    "TranscriptionInput",
    "TranscriptionWorker",
    "TransientTranscriptionError",
    "available_transcribers",
    "get_transcriber",
    "register_transcriber",
    "speech_sample",
]

_LAZY = {
    "AwsTranscribeTranscriber": "helppet_recordings.transcription.aws",
    "LocalTranscriber": "helppet_recordings.transcription.local",
    "OpenAITranscriber": "helppet_recordings.transcription.openai",
}


__getattr__, __dir__ = lazy_exports(__name__, globals(), _LAZY, __all__)
