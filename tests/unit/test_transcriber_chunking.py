"""split_at_silences: bounded pieces, covering the audio in order, cut in pauses."""

from __future__ import annotations

import array

import pytest
from hypothesis import given
from hypothesis import strategies as st

from helppet_recordings.transcription.chunking import choose_cut, split_at_silences
from tests.support.audio import silence, tone


def _split(
    pcm: bytes, sizes: list[int], max_bytes: int, search_bytes: int, min_bytes: int = 0
) -> list[bytes]:
    """Feed ``pcm`` in pieces of the given sizes (cycled) and collect the output."""
    chunks, position, index = [], 0, 0
    while position < len(pcm):
        size = sizes[index % len(sizes)]
        chunks.append(pcm[position : position + size])
        position += size
        index += 1
    return list(
        split_at_silences(
            chunks,
            max_bytes=max_bytes,
            search_bytes=search_bytes,
            frame_bytes=64,
            min_bytes=min_bytes,
        )
    )


@given(
    samples=st.integers(0, 20000),
    max_samples=st.integers(1, 5000),
    search_fraction=st.floats(0, 1),
    sizes=st.lists(st.integers(1, 3000).map(lambda n: n * 2), min_size=1, max_size=5),
    seed=st.integers(0, 2**16),
)
def test_pieces_are_bounded_and_cover_the_audio_in_order(
    samples: int, max_samples: int, search_fraction: float, sizes: list[int], seed: int
) -> None:
    """For any length, limit and input chunking: pieces fit, hold whole samples, rejoin exactly."""
    values = array.array("h", ((seed * 7919 + i * 104729) % 65536 - 32768 for i in range(samples)))
    pcm = values.tobytes()
    max_bytes = max_samples * 2
    search_bytes = int(max_bytes * search_fraction)
    pieces = _split(pcm, sizes, max_bytes, search_bytes)
    assert b"".join(pieces) == pcm
    assert all(0 < len(piece) <= max_bytes and len(piece) % 2 == 0 for piece in pieces)
    assert all(len(piece) >= max_bytes - search_bytes for piece in pieces[:-1])
    assert len(pieces) >= -(-len(pcm) // max_bytes)


@given(
    samples=st.integers(0, 20000),
    max_samples=st.integers(2, 5000),
    search_fraction=st.floats(0, 1),
    min_fraction=st.floats(0, 0.5),
    sizes=st.lists(st.integers(1, 3000).map(lambda n: n * 2), min_size=1, max_size=5),
)
def test_the_last_piece_is_never_shorter_than_min_bytes(
    samples: int, max_samples: int, search_fraction: float, min_fraction: float, sizes: list[int]
) -> None:
    """With min_bytes, a split never ends in a sliver; the other bounds still hold."""
    pcm = array.array("h", (i % 251 * 97 for i in range(samples))).tobytes()
    max_bytes = max_samples * 2
    search_bytes = int(max_bytes * search_fraction)
    min_bytes = int(max_bytes * min_fraction) // 2 * 2
    pieces = _split(pcm, sizes, max_bytes, search_bytes, min_bytes)
    assert b"".join(pieces) == pcm
    assert all(0 < len(piece) <= max_bytes and len(piece) % 2 == 0 for piece in pieces)
    assert all(len(piece) >= max_bytes - search_bytes - min_bytes for piece in pieces[:-1])
    if len(pieces) > 1:
        assert len(pieces[-1]) >= min_bytes


def test_a_sliver_at_the_end_is_joined_by_moving_the_last_cut() -> None:
    """A pause 50 ms before the limit would leave a sliver; min_bytes moves the cut earlier."""
    rate = 16000
    pcm = tone(9.95, rate) + silence(0.05, rate) + tone(0.05, rate)
    plain = _split(pcm, [3200], rate * 2 * 10, rate * 2 * 2)
    assert len(plain[-1]) < 0.1 * rate * 2  # what a service refuses as too short
    pieces = _split(pcm, [3200], rate * 2 * 10, rate * 2 * 2, min_bytes=rate * 2)
    assert b"".join(pieces) == pcm
    assert len(pieces) == 2
    assert len(pieces[-1]) >= rate * 2


@given(
    pause_at=st.floats(0.55, 0.9),
    pause_length=st.floats(0.03, 0.2),
    level=st.floats(0.05, 0.9),
)
def test_the_cut_falls_inside_the_pause(pause_at: float, pause_length: float, level: float) -> None:
    """With a pause in the search window, the cut lands inside it, away from the tone."""
    rate = 8000
    before = tone(pause_at, rate, level=level)
    pause = silence(pause_length, rate)
    pcm = before + pause + tone(1.0, rate, level=level)
    cut = choose_cut(pcm, max_bytes=rate * 2, search_bytes=rate, frame_bytes=80)
    assert len(before) <= cut <= len(before) + len(pause)


def test_without_a_pause_the_quietest_point_wins() -> None:
    """A loud tone then a quiet one: the cut goes into the quiet part of the window."""
    rate = 8000
    pcm = tone(0.8, rate, level=0.9) + tone(0.4, rate, level=0.05) + tone(1.0, rate, level=0.9)
    cut = choose_cut(pcm, max_bytes=rate * 2, search_bytes=rate, frame_bytes=80)
    assert rate * 2 * 0.8 <= cut <= rate * 2 * 1.2


def test_bad_limits_are_refused() -> None:
    """A limit below one sample is a programming error."""
    with pytest.raises(ValueError, match="max_bytes"):
        list(split_at_silences([b"\0\0"], max_bytes=1, search_bytes=0))
    with pytest.raises(ValueError, match="half a sample"):
        list(split_at_silences([b"\0\0\0"], max_bytes=10, search_bytes=2))
