"""Measure and decode audio with PyAV (FFmpeg), streaming with bounded memory.

The limits on a stream's and each frame's shape (``MAX_SAMPLE_RATE`` and the
rest, exported here) and their checks live in ``audio/_limits.py``.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, BinaryIO, Final, cast

import attrs

from helppet_recordings.audio._containers import (
    OGG_TAIL_BYTES,
    mp3_declares_length,
    ogg_tail_is_complete,
    wav_missing_bytes,
)
from helppet_recordings.audio._limits import (
    MAX_CHANNELS,
    MAX_FRAME_SECONDS,
    MAX_SAMPLE_RATE,
    MIN_SAMPLE_RATE,
    check_frame,
    check_shape,
)
from helppet_recordings.audio.errors import AudioDecodeError
from helppet_recordings.audio.sniff import SNIFF_BYTES, sniff_container
from helppet_recordings.errors import MissingDependencyError, RecordingError
from helppet_recordings.policy import MAX_DURATION_SECONDS

if TYPE_CHECKING:
    import av.audio.frame
    import av.audio.stream
    import av.container

__all__ = [
    "ACCEPTED_DEMUXERS",
    "MAX_CHANNELS",
    "MAX_FRAME_SECONDS",
    "MAX_SAMPLE_RATE",
    "MIN_SAMPLE_RATE",
    "AudioInfo",
    "AudioSource",
    "decode_pcm",
    "inspect_audio",
]

AudioSource = BinaryIO | io.RawIOBase | io.BufferedIOBase | os.PathLike[str]
"""What the functions here read: a readable, seekable binary file object, or a local path."""

ACCEPTED_DEMUXERS: Final = (
    "wav",
    "mov",
    "mp4",
    "m4a",
    "3gp",
    "3g2",
    "aac",
    "mp3",
    "ogg",
    "flac",
    "matroska",
    "webm",
    "caf",
    "amr",
    "amrnb",
    "amrwb",
)
"""FFmpeg demuxers allowed to open an upload: the containers of the accepted audio types.

Anything else (playlists such as HLS, concat lists, images, video-only formats)
is refused before it is parsed, so a hostile upload cannot make FFmpeg open
other files or URLs.
"""

# Raw streams whose total length FFmpeg estimates from the bit rate: their
# declared duration is a guess, so a shortfall against it proves nothing. So
# is an MP3's without a Xing/Info/VBRI header (checked only on a shortfall).
_ESTIMATED_DURATION: Final = frozenset({"aac", "amr"})
_WEBM_CODECS: Final = frozenset({"opus", "vorbis"})
_MIN_SHORTFALL_SECONDS: Final = 0.1
_SHORTFALL_FRACTION: Final = 0.01
_AV_TIME_BASE: Final = 1_000_000


@attrs.frozen
class AudioInfo:
    """What an audio file holds, measured by decoding it.

    ``format`` is the container's short name (``wav``, ``m4a``, ``mp4``,
    ``3gp``, ``3g2``, ``mov``, ``aac``, ``mp3``, ``ogg``, ``flac``, ``webm``,
    ``matroska``, ``caf``, ``amr``); ``codec`` the audio codec (``aac``,
    ``mp3``, ``opus``, ``vorbis``, ``flac``, ``pcm_s16le``, ``alac``,
    ``amr_nb``, ...). ``duration_seconds`` counts the decoded samples, so a
    header cannot lie about it. ``sample_rate`` and ``channels`` are those of
    the first audio stream.
    """

    format: str
    codec: str
    duration_seconds: float
    sample_rate: int
    channels: int

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON shape of ``RecordingResponse.audio``."""
        return attrs.asdict(self)


def inspect_audio(source: AudioSource) -> AudioInfo:
    """Decode ``source`` to the end and return what it holds.

    Raises ``AudioDecodeError`` when the container is not an accepted one,
    holds no audio, does not decode, ends before the length its header
    declares, or holds no samples. Memory stays bounded whatever the length:
    frames are counted and dropped as they are decoded.
    """
    with _decoding(source) as decoding:
        for _frame in decoding.frames():
            pass
        return decoding.info()


def decode_pcm(source: AudioSource, *, sample_rate: int = 16000) -> Iterator[bytes]:
    """Yield the audio of ``source`` as 16-bit little-endian mono PCM at ``sample_rate``.

    Each chunk is one resampled frame (a few kilobytes, never more than
    :data:`MAX_FRAME_SECONDS` of audio); nothing else is kept, so memory
    stays bounded. Raises ``AudioDecodeError`` as
    :func:`inspect_audio` does; the truncation checks run when the last chunk
    has been produced, so a consumer sees the error before it treats the
    audio as complete.
    """
    if sample_rate < 1:
        msg = "sample_rate must be positive"
        raise ValueError(msg)
    return _decode_pcm(source, sample_rate)


def _decode_pcm(source: AudioSource, sample_rate: int) -> Iterator[bytes]:
    av = _load_av()
    with _decoding(source) as decoding:
        resampler: Any = None
        shape: tuple[str, str, int] | None = None
        for frame in decoding.frames():
            frame.pts = None  # resample by sample count; broken timestamps must not add silence
            # A resampler takes one input shape; streams appended together (two ADTS
            # sessions, say) change rate or layout midway: flush, then start another.
            now = (frame.format.name, frame.layout.name, frame.sample_rate)
            if now != shape:
                if resampler is not None:
                    yield from _pcm(decoding.resample(resampler, None))
                resampler = av.AudioResampler(format="s16", layout="mono", rate=sample_rate)
                shape = now
            yield from _pcm(decoding.resample(resampler, frame))
        if resampler is not None:
            yield from _pcm(decoding.resample(resampler, None))
        decoding.info()  # runs the truncation checks


def _pcm(frames: list[av.audio.frame.AudioFrame]) -> Iterator[bytes]:
    for frame in frames:
        if frame.samples:
            yield bytes(memoryview(frame.planes[0])[: frame.samples * 2])


def _load_av() -> Any:
    try:
        import av  # noqa: PLC0415 - the audio extra is optional
    except ImportError as exc:
        raise MissingDependencyError("av", "audio") from exc
    return av


class _Decoding:
    """One open container: decodes its first audio stream and checks its length."""

    def __init__(self, av: Any, file: BinaryIO, size: int) -> None:
        self._av = av
        self._file = file
        self._size = size
        self._container: av.container.InputContainer | None = None
        self._stream: av.audio.stream.AudioStream | None = None
        self._samples_seconds = 0.0
        self._finished = False

    def open(self) -> None:
        av = self._av
        try:
            container = av.open(
                self._file,
                mode="r",
                options={"format_whitelist": ",".join(ACCEPTED_DEMUXERS)},
                metadata_errors="replace",
            )
        except RecordingError:
            raise
        except (av.FFmpegError, ValueError, UnicodeDecodeError) as exc:
            raise self._open_error() from exc
        self._container = container
        if not container.streams.audio:
            raise AudioDecodeError("The file holds no audio stream", reason="no_audio_stream")
        stream = container.streams.audio[0]
        if not stream.codec_context or not stream.codec_context.sample_rate:
            raise AudioDecodeError(
                "The audio stream's codec cannot be decoded", reason="unsupported_codec"
            )
        check_shape(int(stream.codec_context.sample_rate), int(stream.codec_context.channels))
        self._stream = stream

    def _open_error(self) -> AudioDecodeError:
        self._file.seek(0)
        known = sniff_container(self._file.read(SNIFF_BYTES))
        if known is None:
            return AudioDecodeError(
                "The file is not in an accepted audio format", reason="unrecognized_container"
            )
        if known == "ogg" and self._ogg_is_cut():
            return AudioDecodeError(
                "The Ogg stream ends without its final page", reason="truncated"
            )
        return AudioDecodeError(
            f"The {known} container is damaged or incomplete", reason="corrupt", container=known
        )

    def _ogg_is_cut(self) -> bool:
        self._file.seek(max(0, self._size - OGG_TAIL_BYTES))
        return ogg_tail_is_complete(self._file.read(OGG_TAIL_BYTES)) is False

    def _opened(self) -> tuple[Any, Any]:
        if self._container is None or self._stream is None:
            msg = "the container is not open"
            raise RuntimeError(msg)
        return self._container, self._stream

    def close(self) -> None:
        if self._container is not None:
            self._container.close()

    def frames(self) -> Iterator[av.audio.frame.AudioFrame]:
        av = self._av
        container, stream = self._opened()
        try:
            for packet in container.demux(stream):
                for frame in packet.decode():
                    # Every frame, not only the first: a FLAC frame or an ADTS session
                    # may state its own rate, and what the container said at open
                    # proves nothing about the rest.
                    check_frame(frame)
                    self._samples_seconds += frame.samples / frame.sample_rate
                    if self._samples_seconds > MAX_DURATION_SECONDS:
                        raise AudioDecodeError(
                            f"The audio goes on past {MAX_DURATION_SECONDS} s, "
                            "the most a recording may hold",
                            reason="too_long",
                            decoded_seconds=round(self._samples_seconds, 3),
                        )
                    yield frame
        except RecordingError:
            raise
        except (av.FFmpegError, ValueError, ZeroDivisionError) as exc:
            raise AudioDecodeError(
                f"The audio data does not decode after {self._samples_seconds:.2f} s",
                reason="corrupt",
                decoded_seconds=round(self._samples_seconds, 3),
            ) from exc
        self._finished = True

    def resample(self, resampler: Any, frame: Any) -> list[av.audio.frame.AudioFrame]:
        av = self._av
        try:
            return list(resampler.resample(frame))
        except (av.FFmpegError, ValueError) as exc:
            raise AudioDecodeError(
                "The audio could not be converted to PCM", reason="corrupt"
            ) from exc

    def info(self) -> AudioInfo:
        container, stream = self._opened()
        if not self._finished:
            msg = "info() needs every frame decoded first"
            raise RuntimeError(msg)
        measured = self._samples_seconds
        fmt = _format_name(container, stream)
        if measured <= 0:
            if self._declared_seconds(fmt):
                raise AudioDecodeError("No audio frame decodes", reason="corrupt")
            raise AudioDecodeError("The audio holds no samples", reason="empty")
        self._check_length(fmt, measured)
        context = stream.codec_context
        return AudioInfo(
            format=fmt,
            codec=context.codec.canonical_name,
            duration_seconds=measured,
            sample_rate=int(context.sample_rate),
            channels=int(context.channels),
        )

    def _check_length(self, fmt: str, measured: float) -> None:
        declared = self._declared_seconds(fmt)
        if declared is not None:
            allowed = max(_MIN_SHORTFALL_SECONDS, _SHORTFALL_FRACTION * declared)
            # Only a shortfall reads the MP3 header again (a ranged read over storage).
            if declared - measured > allowed and (fmt != "mp3" or mp3_declares_length(self._file)):
                raise AudioDecodeError(
                    f"The file ends after {measured:.2f} s of the {declared:.2f} s "
                    "its header declares",
                    reason="truncated",
                    decoded_seconds=round(measured, 3),
                    declared_seconds=round(declared, 3),
                )
        if fmt == "wav":
            missing = wav_missing_bytes(self._file, self._size)
            if missing:
                raise AudioDecodeError(
                    f"The file ends {missing} bytes before the end its header declares",
                    reason="truncated",
                    missing_bytes=missing,
                )
        elif fmt == "ogg" and self._ogg_is_cut():
            raise AudioDecodeError("The Ogg stream ends without its final page", reason="truncated")

    def _declared_seconds(self, fmt: str) -> float | None:
        container, stream = self._opened()
        if fmt in _ESTIMATED_DURATION:
            return None
        if stream.duration and stream.time_base:
            return float(stream.duration * stream.time_base)
        if container.duration:
            return float(container.duration) / _AV_TIME_BASE
        return None


def _format_name(container: Any, stream: Any) -> str:
    names: list[str] = str(container.format.name).split(",")
    if "mov" in names:
        brand = str(container.metadata.get("major_brand", ""))[:4].ljust(4)
        return sniff_container(b"\0\0\0\0ftyp" + brand.encode("latin-1", "replace")) or "mp4"
    if "matroska" in names:
        return "webm" if stream.codec_context.codec.canonical_name in _WEBM_CODECS else "matroska"
    return names[0]


@contextmanager
def _decoding(source: AudioSource) -> Iterator[_Decoding]:
    av = _load_av()
    with _as_file(source) as file:
        file.seek(0, io.SEEK_END)
        size = file.tell()
        file.seek(0)
        decoding = _Decoding(av, file, size)
        try:
            decoding.open()
            yield decoding
        finally:
            decoding.close()


@contextmanager
def _as_file(source: AudioSource) -> Iterator[BinaryIO]:
    if isinstance(source, os.PathLike):
        with open(source, "rb") as file:  # noqa: PTH123 - a PathLike, not necessarily a Path
            yield file
    else:
        yield cast("BinaryIO", source)
