"""FLAC streams written byte by byte, so each frame can state its own sample rate.

Every subframe is CONSTANT (one sample value for the whole block), so a frame
of 65,535 samples takes a dozen bytes: a tiny file that decodes to as much
audio as its frame headers say.
"""

from __future__ import annotations

import struct

import attrs

__all__ = ["FlacFrame", "flac_stream"]

_FRAME_SYNC = b"\xff\xf8"  # sync code, fixed block size
_RATE_FROM_STREAMINFO = 0
_RATE_IN_HZ = 13  # the frame header carries the rate as 16 bits, in Hz
_RATE_IN_TENS_OF_HZ = 14  # ... as 16 bits, in tens of Hz (up to 655,350 Hz)
_BLOCK_SIZE_16_BIT = 7  # the frame header carries block size - 1 as 16 bits
_SAMPLE_SIZE_16 = 4


@attrs.frozen
class FlacFrame:
    """One frame: ``samples`` samples at ``sample_rate`` Hz (None: the STREAMINFO rate).

    A rate above 65,535 Hz is written in tens of Hz, so it must be a multiple of 10.
    """

    samples: int
    sample_rate: int | None = None


def flac_stream(frames: list[FlacFrame], *, sample_rate: int = 16000, channels: int = 1) -> bytes:
    """Return a FLAC file of 16-bit silent ``frames`` (STREAMINFO with no total length)."""
    longest = max(frame.samples for frame in frames)
    shortest = min(frame.samples for frame in frames)
    packed = (sample_rate << 44) | ((channels - 1) << 41) | (15 << 36)  # 16 bits, length unknown
    streaminfo = struct.pack(">HH", shortest, longest) + bytes(6) + packed.to_bytes(8, "big")
    streaminfo += bytes(16)  # no MD5
    out = b"fLaC" + bytes([0x80, 0, 0, len(streaminfo)]) + streaminfo
    for number, frame in enumerate(frames):
        out += _frame(number, frame, channels)
    return out


def _frame(number: int, frame: FlacFrame, channels: int) -> bytes:
    rate, rate_code = frame.sample_rate, _RATE_FROM_STREAMINFO
    if rate is not None:
        rate_code = _RATE_IN_HZ if rate <= 0xFFFF else _RATE_IN_TENS_OF_HZ
    header = _FRAME_SYNC + bytes(
        [
            (_BLOCK_SIZE_16_BIT << 4) | rate_code,
            ((channels - 1) << 4) | (_SAMPLE_SIZE_16 << 1),
        ]
    )
    header += _utf8_number(number) + struct.pack(">H", frame.samples - 1)
    if rate is not None:
        header += struct.pack(">H", rate if rate_code == _RATE_IN_HZ else rate // 10)
    header += bytes([_crc8(header)])
    body = header + b"\x00\x00\x00" * channels  # CONSTANT subframe, value 0
    return body + struct.pack(">H", _crc16(body))


def _utf8_number(value: int) -> bytes:
    if value < 0x80:
        return bytes([value])
    if value < 0x800:
        return bytes([0xC0 | (value >> 6), 0x80 | (value & 0x3F)])
    return bytes([0xE0 | (value >> 12), 0x80 | ((value >> 6) & 0x3F), 0x80 | (value & 0x3F)])


def _crc8(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def _crc16(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x8005) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc
