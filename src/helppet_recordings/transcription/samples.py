"""A short English speech recording shipped with the package, for checks and demos.

The local transcriber runs offline, so a deployment can prove it works
without any clinic audio: transcribe :func:`speech_sample` and look for its
words. The recording is synthetic (espeak-ng), 6.4 seconds, 16 kHz mono FLAC,
about 110 KB.
"""

from __future__ import annotations

from importlib import resources
from typing import Final

import attrs

__all__ = ["SpeechSample", "speech_sample"]

_NAME: Final = "hello-doctor.flac"
_TEXT: Final = "Hello doctor. The dog is healthy. Her heart and lungs sound good."
_SAMPLES: Final = 102_825
_RATE: Final = 16_000


@attrs.frozen
class SpeechSample:
    """A recording with the words spoken in it and its exact length."""

    data: bytes = attrs.field(repr=False)
    text: str
    duration_seconds: float
    mime_type: str
    filename: str


def speech_sample() -> SpeechSample:
    """Return the bundled sample: a synthetic voice saying :attr:`SpeechSample.text`."""
    data = resources.files(__package__).joinpath("data", _NAME).read_bytes()
    return SpeechSample(
        data=data,
        text=_TEXT,
        duration_seconds=_SAMPLES / _RATE,
        mime_type="audio/flac",
        filename=_NAME,
    )
