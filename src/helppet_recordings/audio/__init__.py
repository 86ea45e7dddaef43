"""Measure, decode and encode audio (the ``audio`` extra: PyAV, which bundles FFmpeg).

``inspect_audio`` decodes a file to the end and returns an :class:`AudioInfo`
measured from the samples themselves; ``decode_pcm`` streams it as 16-bit mono
PCM for a speech recogniser; ``RangeReader`` lets both read an object in
storage through ranged reads, so a large recording is never loaded whole.
Audio that cannot be decoded raises :class:`AudioDecodeError`
(``AUDIO_UNDECODABLE``, with ``details["reason"]``).

Only the functions that decode or encode need PyAV; without it they raise
``MissingDependencyError`` naming the ``audio`` extra.
"""

from __future__ import annotations

from helppet_recordings.audio.encode import ENCODINGS, encode_pcm
from helppet_recordings.audio.errors import DECODE_REASONS, AudioDecodeError
from helppet_recordings.audio.probe import (
    ACCEPTED_DEMUXERS,
    AudioInfo,
    AudioSource,
    decode_pcm,
    inspect_audio,
)
from helppet_recordings.audio.reader import RangeReader
from helppet_recordings.audio.sniff import sniff_container

__all__ = [
    "ACCEPTED_DEMUXERS",
    "DECODE_REASONS",
    "ENCODINGS",
    "AudioDecodeError",
    "AudioInfo",
    "AudioSource",
    "RangeReader",
    "decode_pcm",
    "encode_pcm",
    "inspect_audio",
    "sniff_container",
]
