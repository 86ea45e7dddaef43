"""Audio made on the fly with PyAV's encoders: short tones in every accepted format."""

from __future__ import annotations

import io
import math
import os
import struct
from fractions import Fraction
from pathlib import Path
from typing import Final

import attrs
import av
import av.audio.stream

__all__ = [
    "FORMATS",
    "Encoding",
    "encode_pcm_as",
    "encode_tone",
    "pcm_blocks_in_matroska",
    "silence",
    "tone",
    "wav_file",
]


@attrs.frozen
class Encoding:
    """How to produce one accepted upload type with PyAV."""

    mime_type: str
    container: str
    codec: str
    sample_rate: int
    expected_format: str
    expected_codec: str
    channels: int = 1
    options: dict[str, str] = attrs.field(factory=dict)


FORMATS: Final = {
    "wav": Encoding("audio/wav", "wav", "pcm_s16le", 16000, "wav", "pcm_s16le"),
    "m4a": Encoding("audio/mp4", "ipod", "aac", 44100, "m4a", "aac"),
    "mp4": Encoding("audio/mp4", "mp4", "aac", 44100, "mp4", "aac"),
    "3gp": Encoding("audio/3gpp", "3gp", "libopencore_amrnb", 8000, "3gp", "amr_nb"),
    "aac": Encoding("audio/aac", "adts", "aac", 44100, "aac", "aac"),
    "mp3": Encoding("audio/mpeg", "mp3", "libmp3lame", 44100, "mp3", "mp3"),
    "opus": Encoding("audio/ogg", "ogg", "libopus", 48000, "ogg", "opus"),
    "vorbis": Encoding(
        "audio/ogg", "ogg", "vorbis", 44100, "ogg", "vorbis", 2, {"strict": "experimental"}
    ),
    "flac": Encoding("audio/flac", "flac", "flac", 16000, "flac", "flac"),
    "webm": Encoding("audio/webm", "webm", "libopus", 48000, "webm", "opus"),
    "caf": Encoding("audio/x-caf", "caf", "alac", 44100, "caf", "alac"),
    "amr": Encoding("audio/amr", "amr", "libopencore_amrnb", 8000, "amr", "amr_nb"),
}
"""Every accepted upload type PyAV can encode (AMR-WB has no encoder in PyAV's FFmpeg)."""


def tone(
    seconds: float, sample_rate: int, *, frequency: float = 440.0, level: float = 0.3
) -> bytes:
    """Return a sine tone as 16-bit little-endian mono PCM (one period built, then repeated)."""
    count = round(seconds * sample_rate)
    one_second = struct.pack(
        f"<{sample_rate}h",
        *(
            round(level * 32767 * math.sin(2 * math.pi * frequency * i / sample_rate))
            for i in range(sample_rate)
        ),
    )
    whole, rest = divmod(count, sample_rate)
    return one_second * whole + one_second[: rest * 2]


def silence(seconds: float, sample_rate: int) -> bytes:
    """Return digital silence as 16-bit mono PCM."""
    return b"\0\0" * round(seconds * sample_rate)


def encode_tone(name: str, seconds: float) -> bytes:
    """Return a ``seconds`` long 440 Hz tone encoded as the format named ``name`` in FORMATS."""
    return encode_pcm_as(name, tone(seconds, FORMATS[name].sample_rate))


def encode_pcm_as(
    name: str,
    pcm: bytes,
    *,
    container_options: dict[str, str] | None = None,
    variable_bit_rate: bool = False,
    sample_rate: int | None = None,
) -> bytes:
    """Return 16-bit mono ``pcm`` at the format's rate, encoded as the format named ``name``.

    ``container_options`` go to the muxer (``{"write_xing": "0"}`` leaves an
    MP3 without its length header); ``variable_bit_rate`` asks the encoder for
    a quality scale instead of a constant bit rate; ``sample_rate`` replaces
    the format's usual rate (``pcm`` is at that rate).
    """
    encoding = FORMATS[name]
    rate = sample_rate or encoding.sample_rate
    layout = "stereo" if encoding.channels == 2 else "mono"
    output = io.BytesIO()
    with av.open(
        output, mode="w", format=encoding.container, options=container_options or {}
    ) as container:
        stream = container.add_stream(encoding.codec, rate=rate, options=encoding.options)
        assert isinstance(stream, av.audio.stream.AudioStream)
        stream.layout = layout
        context = stream.codec_context
        context.qscale = variable_bit_rate
        resampler = av.AudioResampler(
            format=stream.format.name,
            layout=layout,
            rate=rate,
            frame_size=context.frame_size or None,
        )
        step = 4096
        for start in range(0, len(pcm) // 2, step):
            piece = pcm[start * 2 : (start + step) * 2]
            frame = av.AudioFrame(format="s16", layout="mono", samples=len(piece) // 2)
            frame.planes[0].update(piece)
            frame.sample_rate = rate
            frame.pts = start
            frame.time_base = Fraction(1, rate)
            for resampled in resampler.resample(frame):
                for packet in stream.encode(resampled):
                    container.mux(packet)
        for resampled in resampler.resample(None):
            for packet in stream.encode(resampled):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return output.getvalue()


def pcm_blocks_in_matroska(block_seconds: list[float], sample_rate: int) -> bytes:
    """Return silent 16-bit mono PCM in Matroska, one block (one decoded frame) per entry.

    FFmpeg's PCM decoder turns a whole packet into one frame, and a Matroska
    block can be as long as its muxer makes it: the way to a frame longer
    than any codec's.
    """
    output = io.BytesIO()
    with av.open(output, mode="w", format="matroska") as container:
        stream = container.add_stream("pcm_s16le", rate=sample_rate)
        assert isinstance(stream, av.audio.stream.AudioStream)
        stream.layout = "mono"
        start = 0
        for seconds in block_seconds:
            samples = round(seconds * sample_rate)
            frame = av.AudioFrame(format="s16", layout="mono", samples=samples)
            frame.planes[0].update(silence(seconds, sample_rate))
            frame.sample_rate = sample_rate
            frame.pts = start
            frame.time_base = Fraction(1, sample_rate)
            start += samples
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return output.getvalue()


def wav_file(path: Path, size: int) -> Path:
    """Write a WAV file of exactly ``size`` bytes: a valid header, then random samples."""
    header = b"RIFF" + struct.pack("<I", size - 8) + b"WAVE"
    header += b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, 16_000, 32_000, 2, 16)
    header += b"data" + struct.pack("<I", size - 44)
    with path.open("wb") as handle:
        handle.write(header)
        remaining = size - len(header)
        while remaining:
            chunk = os.urandom(min(remaining, 4 * 1024 * 1024))
            handle.write(chunk)
            remaining -= len(chunk)
    return path
