"""Encode 16-bit mono PCM into a small file (for services that take a whole file)."""

from __future__ import annotations

import io
from collections.abc import Iterable
from fractions import Fraction
from typing import Final

from helppet_recordings.audio.errors import AudioDecodeError
from helppet_recordings.audio.probe import _load_av

__all__ = ["ENCODINGS", "encode_pcm"]

ENCODINGS: Final = {
    "flac": ("flac", "flac", "s16"),
    "wav": ("wav", "pcm_s16le", "s16"),
    "mp3": ("mp3", "libmp3lame", "s16p"),
}
"""Output formats of :func:`encode_pcm`: name -> (container, codec, sample format)."""

_FRAME_SAMPLES: Final = 4096


def encode_pcm(pcm: Iterable[bytes], *, sample_rate: int, format: str = "flac") -> bytes:  # noqa: A002
    """Return ``pcm`` (16-bit little-endian mono chunks) encoded as a ``format`` file.

    ``format`` is ``flac`` (lossless, about half the size of WAV for speech),
    ``wav`` or ``mp3``. The whole file is built in memory: callers cut long
    audio into chunks first.
    """
    if format not in ENCODINGS:
        msg = f"format must be one of {sorted(ENCODINGS)}"
        raise ValueError(msg)
    av = _load_av()
    container_name, codec, sample_format = ENCODINGS[format]
    output = io.BytesIO()
    with av.open(output, mode="w", format=container_name) as container:
        stream = container.add_stream(codec, rate=sample_rate)
        stream.layout = "mono"
        stream.format = sample_format
        resampler = av.AudioResampler(
            format=sample_format,
            layout="mono",
            rate=sample_rate,
            frame_size=stream.codec_context.frame_size or None,
        )
        written = 0
        pending = bytearray()

        def encode(frame: object) -> None:
            for resampled in resampler.resample(frame):
                for packet in stream.encode(resampled):
                    container.mux(packet)

        for chunk in pcm:
            pending += chunk
            usable = len(pending) - len(pending) % (2 * _FRAME_SAMPLES)
            for start in range(0, usable, 2 * _FRAME_SAMPLES):
                encode(
                    _frame(av, pending[start : start + 2 * _FRAME_SAMPLES], written, sample_rate)
                )
                written += _FRAME_SAMPLES
            del pending[:usable]
        if len(pending) % 2:
            raise AudioDecodeError("PCM input ends in half a sample", reason="corrupt")
        if pending:
            encode(_frame(av, pending, written, sample_rate))
        encode(None)
        for packet in stream.encode(None):
            container.mux(packet)
    return output.getvalue()


def _frame(av: object, data: bytes | bytearray, pts: int, sample_rate: int) -> object:
    frame = av.AudioFrame(format="s16", layout="mono", samples=len(data) // 2)  # type: ignore[attr-defined]
    frame.planes[0].update(bytes(data))
    frame.sample_rate = sample_rate
    frame.pts = pts
    frame.time_base = Fraction(1, sample_rate)
    return frame
