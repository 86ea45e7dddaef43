"""The error raised for audio that cannot be decoded.

::

    RecordingError
    └── AudioDecodeError    AUDIO_UNDECODABLE    422   details["reason"]

``details["reason"]`` is one of the short codes in :data:`DECODE_REASONS`; the
message says the same for people. Neither ever holds file content or names.
"""

from __future__ import annotations

from typing import Any, Final

from helppet_recordings.errors import RecordingError

__all__ = ["DECODE_REASONS", "AudioDecodeError"]

DECODE_REASONS: Final = frozenset(
    {
        "unrecognized_container",  # not one of the accepted audio containers
        "no_audio_stream",  # a container with no audio in it
        "unsupported_codec",  # audio in a codec this build cannot decode
        "corrupt",  # the audio data does not decode
        "truncated",  # the file ends before the length its header declares
        "empty",  # the audio holds no samples
        "sample_rate",  # a sample rate outside 8-96 kHz (below speech, or above voice recording)
        "channels",  # more channels than a voice recording has (probe.MAX_CHANNELS)
        "too_long",  # more audio than a recording may hold (policy.MAX_DURATION_SECONDS)
    }
)
"""Every value ``AudioDecodeError.details["reason"]`` can take."""


class AudioDecodeError(RecordingError):
    """The audio is truncated, corrupt or not audio at all; retrying will not help.

    ``reason`` (also ``details["reason"]``) is a short code from
    :data:`DECODE_REASONS`; a transcription worker marks the recording
    ``failed`` with it.
    """

    error_code = "AUDIO_UNDECODABLE"
    http_status = 422
    default_message = "The audio could not be decoded"

    def __init__(self, message: str | None = None, *, reason: str, **details: Any) -> None:
        super().__init__(message, reason=reason, **details)

    @property
    def reason(self) -> str:
        """The short code saying why the audio could not be decoded."""
        return str(self.details["reason"])
