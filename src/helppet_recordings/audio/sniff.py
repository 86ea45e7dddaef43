"""Recognise an audio container from its first bytes (pure, no decoding)."""

from __future__ import annotations

from typing import Final

__all__ = ["SNIFF_BYTES", "sniff_container"]

SNIFF_BYTES: Final = 64
"""How many leading bytes :func:`sniff_container` looks at."""

_ISO_BRANDS: Final = {
    b"M4A ": "m4a",
    b"M4B ": "m4a",
    b"qt  ": "mov",
    b"3g2a": "3g2",
    b"3g2b": "3g2",
    b"3g2c": "3g2",
}

_PREFIXES: Final = (
    (b"OggS", "ogg"),
    (b"fLaC", "flac"),
    (b"\x1a\x45\xdf\xa3", "webm"),
    (b"caff", "caf"),
    (b"#!AMR-WB\n", "amr-wb"),
    (b"#!AMR\n", "amr"),
    (b"ID3", "mp3"),
)


def sniff_container(head: bytes) -> str | None:
    """Return the container that ``head`` (a file's first bytes) starts, or None.

    Names: ``wav``, ``m4a``, ``mp4``, ``3gp``, ``3g2``, ``mov``, ``ogg``,
    ``flac``, ``webm`` (any Matroska), ``caf``, ``amr``, ``amr-wb``, ``mp3``
    (an ID3 tag or an MPEG audio frame header) and ``aac`` (an ADTS header).
    This says what a file claims to be, not that it decodes.
    """
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "wav"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        return _ISO_BRANDS.get(brand) or ("3gp" if brand.startswith(b"3g") else "mp4")
    for prefix, name in _PREFIXES:
        if head.startswith(prefix):
            return name
    return _sniff_frame_sync(head)


def _sniff_frame_sync(head: bytes) -> str | None:
    if len(head) < 2 or head[0] != 0xFF:
        return None
    if head[1] & 0xF6 == 0xF0:  # 12 sync bits, layer 00: ADTS
        return "aac"
    if head[1] & 0xE0 == 0xE0 and head[1] & 0x06:  # 11 sync bits and a layer: MPEG audio
        return "mp3"
    return None
