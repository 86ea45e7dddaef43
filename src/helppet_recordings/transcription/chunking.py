"""Cut a stream of 16-bit mono PCM into bounded pieces, at the quietest point near each cut.

Services limit how much audio one request may carry, and a recogniser does
best on utterances of bounded length. :func:`split_at_silences` keeps every
piece at most ``max_bytes`` and, within the last ``search_bytes`` before that
limit, cuts in the middle of the longest quiet stretch, so a cut falls in a
pause between words rather than inside one. Pure Python, streaming: it holds
at most one piece plus one incoming chunk.
"""

from __future__ import annotations

import array
import sys
from collections.abc import Iterable, Iterator
from typing import Final

__all__ = ["FRAME_SECONDS", "choose_cut", "split_at_silences"]

FRAME_SECONDS: Final = 0.02
"""Length of the frames whose energy is compared (20 ms)."""

_QUIET_RATIO: Final = 1.5
_QUIET_FLOOR: Final = 4  # mean square of a signal within about +-2 of zero: digital silence


def split_at_silences(
    pcm: Iterable[bytes],
    *,
    max_bytes: int,
    search_bytes: int,
    frame_bytes: int = 640,
    min_bytes: int = 0,
) -> Iterator[bytes]:
    """Yield ``pcm`` (16-bit mono chunks of any size) again as pieces of at most ``max_bytes``.

    The pieces, joined, are exactly the input; each is non-empty and a whole
    number of samples; every piece but the last is at least
    ``max_bytes - search_bytes - min_bytes`` long, and, when there are several,
    the last is at least ``min_bytes`` (services refuse a request of a few
    milliseconds: the last cut moves earlier to leave it that much).
    ``frame_bytes`` is the energy frame (640 bytes is 20 ms at 16 kHz).
    """
    if max_bytes < 2 or search_bytes < 0 or frame_bytes < 2:
        msg = "max_bytes and frame_bytes must be at least 2, search_bytes at least 0"
        raise ValueError(msg)
    if not 0 <= min_bytes <= max_bytes // 2:
        msg = "min_bytes must be from 0 to half of max_bytes"
        raise ValueError(msg)
    max_bytes -= max_bytes % 2
    frame_bytes -= frame_bytes % 2
    min_bytes += min_bytes % 2
    buffer = bytearray()
    for chunk in pcm:
        buffer += chunk
        # Cutting only past max_bytes + min_bytes leaves more than min_bytes behind.
        while len(buffer) > max_bytes + min_bytes:
            cut = choose_cut(
                buffer, max_bytes=max_bytes, search_bytes=search_bytes, frame_bytes=frame_bytes
            )
            yield bytes(buffer[:cut])
            del buffer[:cut]
    if len(buffer) % 2:
        msg = "PCM input ends in half a sample"
        raise ValueError(msg)
    while len(buffer) > max_bytes:
        cut = choose_cut(
            buffer,
            max_bytes=min(max_bytes, len(buffer) - min_bytes),
            search_bytes=search_bytes,
            frame_bytes=frame_bytes,
        )
        yield bytes(buffer[:cut])
        del buffer[:cut]
    if buffer:
        yield bytes(buffer)


def choose_cut(
    pcm: bytes | bytearray, *, max_bytes: int, search_bytes: int, frame_bytes: int = 640
) -> int:
    """Return where to cut ``pcm`` (longer than ``max_bytes``): an even offset in the window.

    The window is ``[max_bytes - search_bytes, max_bytes]`` (at least one
    sample from the start). Frames of ``frame_bytes`` in it are compared by
    mean square; frames within 1.5 times the quietest (or digitally silent)
    are quiet, and the cut goes in the middle of the longest run of quiet
    frames, the latest one on a tie. Without a whole frame in the window the
    cut is at ``max_bytes``.
    """
    high = max_bytes - max_bytes % 2
    low = max(2, high - search_bytes)
    low += low % 2
    count = (high - low) // frame_bytes
    if count < 1:
        return high
    energies = [_mean_square(pcm, low + index * frame_bytes, frame_bytes) for index in range(count)]
    threshold = max(min(energies) * _QUIET_RATIO, _QUIET_FLOOR)
    best_start, best_length, run_start = 0, 0, None
    for index, energy in enumerate([*energies, None]):
        if energy is not None and energy <= threshold:
            if run_start is None:
                run_start = index
            continue
        if run_start is not None:
            length = index - run_start
            if length >= best_length:
                best_start, best_length = run_start, length
            run_start = None
    middle = low + best_start * frame_bytes + (best_length * frame_bytes) // 2
    return middle - middle % 2


def _mean_square(pcm: bytes | bytearray, start: int, length: int) -> float:
    samples = array.array("h")
    samples.frombytes(pcm[start : start + length])
    if sys.byteorder == "big":  # pragma: no cover - PCM is little-endian
        samples.byteswap()
    return sum(value * value for value in samples) / max(1, len(samples))
