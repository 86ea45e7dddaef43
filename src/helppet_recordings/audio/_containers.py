"""Length checks that FFmpeg does not make: where a header says more than the file holds.

FFmpeg quietly clamps a WAV ``data`` chunk to the file's end and drops a cut
final Ogg page, so a truncated upload of those formats decodes as a shorter,
valid file. These pure functions read the containers' own framing to tell.
"""

from __future__ import annotations

import struct
import zlib
from typing import BinaryIO, Final

__all__ = ["OGG_TAIL_BYTES", "mp3_declares_length", "ogg_tail_is_complete", "wav_missing_bytes"]

_UNKNOWN_SIZES: Final = frozenset({0, 0xFFFFFFFF})  # what streaming writers put before they know
_MAX_CHUNKS: Final = 64

OGG_TAIL_BYTES: Final = 2 * 65307
"""Bytes from the end of an Ogg file that :func:`ogg_tail_is_complete` needs (two largest pages)."""

# In real audio the first "OggS" of a tail starts a page (the capture pattern
# turns up by chance in compressed data about once per 4 GiB); a tail packed
# with false ones is made to be slow to check, not a cut recording.
_MAX_OGG_CANDIDATES: Final = 32


def wav_missing_bytes(source: BinaryIO, size: int) -> int | None:
    """Return how many bytes the RIFF/WAVE ``data`` chunk declares beyond the file's end.

    0 when the data is all there; None when the file is not RIFF/WAVE or its
    header leaves the length open (0 or 0xFFFFFFFF, as streaming recorders
    write before they finish). Reads only chunk headers; leaves the position
    where it was.
    """
    start = source.tell()
    try:
        source.seek(0)
        head = source.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        offset = 12
        for _ in range(_MAX_CHUNKS):
            source.seek(offset)
            header = source.read(8)
            if len(header) < 8:
                return None
            chunk_id, chunk_size = header[:4], int(struct.unpack("<I", header[4:])[0])
            if chunk_id == b"data":
                if chunk_size in _UNKNOWN_SIZES:
                    return None
                return max(0, offset + 8 + chunk_size - size)
            offset += 8 + chunk_size + (chunk_size & 1)
        return None
    finally:
        source.seek(start)


_ID3_HEADER: Final = 10
_MP3_SYNC_SEARCH: Final = 4096
_LENGTH_TAG_END: Final = 4 + 32 + 4 + 4  # the frame header, the longest side info, tag, flags


def mp3_declares_length(source: BinaryIO) -> bool:
    """Return whether an MPEG audio file's first frame states the file's length.

    Only a Xing or Info header with its frame count, or a VBRI header, does. Without one, FFmpeg
    estimates the length from the first frame's bit rate, which for a
    variable bit rate file (as streaming encoders write them) says nothing.
    Skips an ID3v2 tag; leaves the position where it was.
    """
    start = source.tell()
    try:
        source.seek(0)
        head = source.read(_ID3_HEADER)
        offset = 0
        if len(head) == _ID3_HEADER and head[:3] == b"ID3":
            size = 0
            for byte in head[6:10]:
                size = (size << 7) | (byte & 0x7F)
            footer = _ID3_HEADER if head[5] & 0x10 else 0
            offset = _ID3_HEADER + size + footer
        source.seek(offset)
        data = source.read(_MP3_SYNC_SEARCH + _LENGTH_TAG_END)
        for position in range(min(len(data) - 1, _MP3_SYNC_SEARCH)):
            if data[position] == 0xFF and data[position + 1] & 0xE0 == 0xE0:
                return _states_frame_count(data[position : position + _LENGTH_TAG_END + 4])
        return False
    finally:
        source.seek(start)


def _states_frame_count(frame: bytes) -> bool:
    """Whether a first frame's Xing/Info header has its frame count (flag 1), or it has VBRI.

    FFmpeg takes a length only from the frame count; a Xing header may carry
    just a byte count or a seek table. A VBRI header always has the count.
    """
    if b"VBRI" in frame[:_LENGTH_TAG_END]:
        return True
    for tag in (b"Xing", b"Info"):
        at = frame.find(tag, 0, _LENGTH_TAG_END)
        if at >= 0 and len(frame) >= at + 8:
            return bool(frame[at + 7] & 0x01)  # the last byte of the big-endian flags
    return False


def ogg_tail_is_complete(tail: bytes) -> bool | None:
    """Say whether an Ogg file whose last bytes are ``tail`` ends with a whole final page.

    True when the pages chain, CRC-checked, to the exact end and the last
    page carries the end-of-stream flag; False when the last page is cut
    short or the stream ends without that flag (the recorder stopped before
    finishing the file); None when no valid page is found in ``tail``
    (pass at least :data:`OGG_TAIL_BYTES` bytes, or the whole file), none
    among its first 32 capture patterns, or the pages stop chaining (damage
    rather than a cut). So at most 32 candidate pages and then the chain
    to the end are CRC-checked (about 2 MB), at C speed.
    """
    position = tail.find(b"OggS")
    for _ in range(_MAX_OGG_CANDIDATES):
        if position == -1:
            break
        if _page_is_valid(tail, position):
            return _chain_to_end(tail, position)
        position = tail.find(b"OggS", position + 1)
    return None


def _chain_to_end(tail: bytes, position: int) -> bool | None:
    last_flags = 0
    while position < len(tail):
        rest = tail[position : position + 4]
        if not b"OggS".startswith(rest):
            return None  # not a page where one should start: damaged, not cut
        length = _page_length(tail, position)
        if length is None or position + length > len(tail):
            return False  # the last page is cut short
        if not _page_is_valid(tail, position):
            return None
        last_flags = tail[position + 5]
        position += length
    return bool(last_flags & 0x04)


def _page_length(data: bytes, position: int) -> int | None:
    if len(data) < position + 27 or data[position : position + 4] != b"OggS":
        return None
    segments = data[position + 26]
    table_end = position + 27 + segments
    if len(data) < table_end:
        return None
    return 27 + segments + sum(data[position + 27 : table_end])


def _page_is_valid(data: bytes, position: int) -> bool:
    length = _page_length(data, position)
    if length is None or position + length > len(data) or data[position + 4] != 0:
        return False
    page = bytearray(data[position : position + length])
    expected = int(struct.unpack("<I", page[22:26])[0])
    page[22:26] = b"\0\0\0\0"
    return _ogg_crc(page) == expected


_BIT_REVERSED: Final = bytes(int(f"{byte:08b}"[::-1], 2) for byte in range(256))


def _ogg_crc(data: bytes | bytearray) -> int:
    """Ogg's CRC-32: polynomial 0x04C11DB7, not reflected, zero start, no final XOR.

    zlib's CRC-32 is the same polynomial bit-reflected (0xEDB88320): fed the
    data with each byte's bits reversed, started and finished so that its
    own inversions cancel, it gives Ogg's CRC with its 32 bits reversed.
    """
    reflected = zlib.crc32(data.translate(_BIT_REVERSED), 0xFFFFFFFF) ^ 0xFFFFFFFF
    return int.from_bytes(reflected.to_bytes(4, "little").translate(_BIT_REVERSED), "big")
