"""Errors of transcribers, and what a worker does with each.

::

    RecordingError
    └── TranscriptionError                  TRANSCRIPTION_ERROR        500
        ├── TransientTranscriptionError     TRANSCRIPTION_UNAVAILABLE  503  retry later
        │   └── TranscriberConfigurationError                               fix the deployment
        └── PermanentTranscriptionError     TRANSCRIPTION_FAILED       422  mark failed

- ``TransientTranscriptionError``: the service could not be reached, timed
  out, throttled (429) or failed (5xx). ``retry_after`` holds the seconds the
  service asked for (``Retry-After``), or None when it did not say; the same
  recording may succeed later.
- ``TranscriberConfigurationError``: credentials, permissions, the model
  name or a setting (a language the service does not know) are wrong. Not
  the recording's fault: a worker should leave the recording waiting and
  stop until an operator fixes the configuration.
- ``PermanentTranscriptionError``: the service refused this audio (undecodable,
  unsupported, too long, rejected). ``reason`` says why; a worker marks the
  recording ``failed`` with it. ``AudioDecodeError`` (from
  :mod:`helppet_recordings.audio`) is the other permanent failure.

Messages and details never carry transcript text or file names.
"""

from __future__ import annotations

from typing import Any

from helppet_recordings.errors import RecordingError

__all__ = [
    "PermanentTranscriptionError",
    "TranscriberConfigurationError",
    "TranscriptionError",
    "TransientTranscriptionError",
]


class TranscriptionError(RecordingError):
    """Base of every error a transcriber raises on purpose."""

    error_code = "TRANSCRIPTION_ERROR"
    http_status = 500
    default_message = "Transcription failed"


class TransientTranscriptionError(TranscriptionError):
    """The transcription service is unavailable for now; retry the same recording later.

    ``retry_after`` (also ``details["retry_after"]``) is the wait in seconds the
    service asked for, or None when it did not say.
    """

    error_code = "TRANSCRIPTION_UNAVAILABLE"
    http_status = 503
    default_message = "The transcription service is temporarily unavailable"

    def __init__(
        self, message: str | None = None, *, retry_after: float | None = None, **details: Any
    ) -> None:
        super().__init__(message, retry_after=retry_after, **details)

    @property
    def retry_after(self) -> float | None:
        """Seconds to wait before retrying, when the service said so."""
        value = self.details.get("retry_after")
        return None if value is None else float(value)


class TranscriberConfigurationError(TransientTranscriptionError):
    """The transcriber's credentials, permissions or model are wrong.

    Retrying the recording will not help until the deployment is fixed, and
    the recording is not to blame: it should keep waiting.
    """

    default_message = "The transcriber is not configured correctly"


class PermanentTranscriptionError(TranscriptionError):
    """The service refused this audio; retrying will not help.

    ``reason`` (also ``details["reason"]``) is a short code: ``refused``,
    ``unsupported_format``, ``undecodable``, ``too_long``, ``job_failed`` or
    ``bad_result`` (the service's answer is not in its documented shape;
    ``details["field"]`` and ``details["problem"]`` say where and what, never
    the value).
    """

    error_code = "TRANSCRIPTION_FAILED"
    http_status = 422
    default_message = "The transcription service refused the audio"

    def __init__(self, message: str | None = None, *, reason: str, **details: Any) -> None:
        super().__init__(message, reason=reason, **details)

    @property
    def reason(self) -> str:
        """The short code saying why the service refused the audio."""
        return str(self.details["reason"])
