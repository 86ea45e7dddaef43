"""The shape decoded audio may have: sample rate, channels, and seconds per frame.

The limits are checked on the first audio stream when a file is opened and on
every decoded frame, before it is counted or resampled (a FLAC frame or an
ADTS session may state its own rate). Pure checks: they raise
``AudioDecodeError`` and need PyAV only for the frame's type. The constants
are public as ``helppet_recordings.audio.probe.MAX_SAMPLE_RATE`` and so on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from helppet_recordings.audio.errors import AudioDecodeError

if TYPE_CHECKING:
    import av.audio.frame

__all__ = [
    "MAX_CHANNELS",
    "MAX_FRAME_SECONDS",
    "MAX_SAMPLE_RATE",
    "MIN_SAMPLE_RATE",
    "check_frame",
    "check_shape",
]

MIN_SAMPLE_RATE: Final = 8000
"""The lowest sample rate accepted: narrowband telephony, the least speech is recorded at."""

MAX_SAMPLE_RATE: Final = 96000
"""The highest sample rate accepted: twice what phones record speech at (48 kHz).

Decoding and resampling cost grows with the rate; beyond this a file is not
voice audio, only more CPU for the same seconds.
"""

MAX_CHANNELS: Final = 8
"""The most channels accepted (7.1 surround); speech is recorded in one or two."""

MAX_FRAME_SECONDS: Final = 10.0
"""The most audio one decoded frame may hold.

FLAC's largest block (65,535 samples) lasts 8.2 s at 8 kHz; every other
codec's frames are far shorter. It bounds what one frame becomes once
resampled, so a chunk of :func:`~helppet_recordings.audio.probe.decode_pcm`
never holds more than this.
"""


def check_shape(rate: int, channels: int) -> None:
    """Refuse a sample rate outside the accepted range, or more channels than accepted."""
    if rate < MIN_SAMPLE_RATE:
        # A few bytes at 1 Hz would be hours to decode, resample and transcribe.
        raise AudioDecodeError(
            f"The audio's sample rate ({rate} Hz) is below the {MIN_SAMPLE_RATE} Hz speech needs",
            reason="sample_rate",
            sample_rate=rate,
        )
    if rate > MAX_SAMPLE_RATE:
        raise AudioDecodeError(
            f"The audio's sample rate ({rate} Hz) is above the {MAX_SAMPLE_RATE} Hz "
            "accepted for voice recordings",
            reason="sample_rate",
            sample_rate=rate,
        )
    if channels > MAX_CHANNELS:
        raise AudioDecodeError(
            f"The audio has {channels} channels, more than the {MAX_CHANNELS} accepted",
            reason="channels",
            channels=channels,
        )


def check_frame(frame: av.audio.frame.AudioFrame) -> None:
    """Refuse a decoded frame before it is counted or resampled."""
    check_shape(int(frame.sample_rate), int(frame.layout.nb_channels))
    seconds = frame.samples / frame.sample_rate
    if seconds > MAX_FRAME_SECONDS:
        raise AudioDecodeError(
            f"A decoded frame holds {seconds:.2f} s of audio, more than the "
            f"{MAX_FRAME_SECONDS:g} s any accepted codec puts in one",
            reason="corrupt",
            frame_seconds=round(seconds, 3),
        )
