"""RangeReader reads like a file, in bounded ranged reads; the pure container checks."""

from __future__ import annotations

import io
from typing import cast

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from helppet_recordings import InMemoryStorage, S3Storage
from helppet_recordings.audio import RangeReader, inspect_audio, sniff_container
from helppet_recordings.audio._containers import (
    OGG_TAIL_BYTES,
    _ogg_crc,
    ogg_tail_is_complete,
)
from helppet_recordings.errors import UploadVerificationError
from helppet_recordings.models import StoredObject
from helppet_recordings.ports import PinnedReads, RecordingStorage
from tests.support.audio import encode_tone
from tests.support.moto_s3 import BUCKET, moto_bucket

operations = st.lists(
    st.one_of(
        st.tuples(st.just("read"), st.integers(-1, 5000)),
        st.tuples(st.just("seek"), st.integers(0, 12000), st.sampled_from([0, 1, 2])),
    ),
    max_size=30,
)


@given(data=st.binary(max_size=10000), block_size=st.integers(1, 3000), ops=operations)
def test_range_reader_behaves_like_bytesio(
    data: bytes, block_size: int, ops: list[tuple[int | str, ...]]
) -> None:
    """Any sequence of reads and seeks returns what BytesIO returns for the same bytes."""
    calls: list[tuple[int, int]] = []

    def read_range(offset: int, length: int) -> bytes:
        calls.append((offset, length))
        return data[offset : offset + length]

    reader = RangeReader(read_range, len(data), block_size=block_size, max_blocks=2)
    expected = io.BytesIO(data)
    for op in ops:
        if op[0] == "read":
            assert reader.read(int(op[1])) == expected.read(int(op[1]))
        else:
            offset, whence = int(op[1]), int(op[2])
            offset = -offset if whence == 2 else offset
            offset = max(offset, -expected.tell()) if whence == 1 else offset
            if whence == 2 and len(data) + offset < 0:
                continue
            assert reader.seek(offset, whence) == expected.seek(offset, whence)
        assert reader.tell() == expected.tell()
    for offset, length in calls:
        assert offset % block_size == 0
        assert 1 <= length <= block_size
        assert offset + length <= len(data)


def test_sequential_read_fetches_each_block_once() -> None:
    """Reading a 10-block object front to back makes exactly 10 ranged reads."""
    data = bytes(range(256)) * 40
    reader = RangeReader(lambda o, n: data[o : o + n], len(data), block_size=1024)
    assert io.BufferedReader(reader).read() == data
    assert reader.fetches == 10


def test_reader_over_s3_storage_decodes_audio() -> None:
    """from_storage reads a stored object through the storage port's ranged reads."""
    data = encode_tone("mp3", 1.5)
    key = "recordings/2024/01/01/a.mp3"
    with moto_bucket() as client:
        client.put_object(Bucket=BUCKET, Key=key, Body=data)
        reader = RangeReader.from_storage(
            S3Storage(BUCKET, client=client), key, len(data), block_size=2048
        )
        assert inspect_audio(reader).duration_seconds == pytest.approx(1.5, abs=0.01)
        assert reader.fetches == -(-len(data) // 2048)
        client.delete_object(Bucket=BUCKET, Key=key)
        gone = RangeReader.from_storage(S3Storage(BUCKET, client=client), key, len(data))
        with pytest.raises(UploadVerificationError):
            inspect_audio(gone)


@attrs.define
class PlainStorage:
    """A third-party storage with the base port's reads only (no ``PinnedReads``)."""

    inner: InMemoryStorage
    reads: int = 0
    heads: int = 0

    def read_range(self, key: str, *, offset: int, length: int) -> bytes | None:
        """The inner storage's ranged read, counted."""
        self.reads += 1
        return self.inner.read_range(key, offset=offset, length=length)

    def head(self, key: str) -> StoredObject | None:
        """The inner storage's HEAD, counted."""
        self.heads += 1
        return self.inner.head(key)


KEY = "recordings/u/ctx/a.wav"
VERIFIED = bytes(range(256)) * 16
OTHER = VERIFIED[::-1]


def _storages(kind: str) -> tuple[InMemoryStorage, RecordingStorage]:
    inner = InMemoryStorage()
    inner.put_object(KEY, VERIFIED, content_type="audio/wav")
    outer = inner if kind == "pinned" else cast("RecordingStorage", PlainStorage(inner))
    assert isinstance(outer, PinnedReads) is (kind == "pinned")
    return inner, outer


@pytest.mark.parametrize("kind", ["pinned", "plain"])
@pytest.mark.parametrize("replacement", [OTHER, VERIFIED + b"grown", VERIFIED[:-1]])
def test_a_reader_pinned_to_an_etag_never_returns_another_object(
    kind: str, replacement: bytes
) -> None:
    """The object replaced between two blocks (same size, grown, shrunk): object_changed."""
    inner, storage = _storages(kind)
    verified = inner.head(KEY)
    assert verified is not None
    assert verified.etag is not None
    reader = RangeReader.from_storage(
        storage, KEY, len(VERIFIED), etag=verified.etag, block_size=1024
    )
    assert reader.read(1024) == VERIFIED[:1024]
    inner.put_object(KEY, replacement, content_type="audio/wav")
    with pytest.raises(UploadVerificationError) as changed:
        reader.read(1024)
    assert changed.value.details["reason"] == "object_changed"
    assert "recordings/" not in str(changed.value.to_dict())


@pytest.mark.parametrize("kind", ["pinned", "plain"])
def test_a_reader_pinned_to_an_etag_reports_a_deleted_object_as_missing(kind: str) -> None:
    """An object deleted under a pinned reader is object_missing, not object_changed."""
    inner, storage = _storages(kind)
    verified = inner.head(KEY)
    assert verified is not None
    assert verified.etag is not None
    reader = RangeReader.from_storage(storage, KEY, len(VERIFIED), etag=verified.etag)
    inner.delete(KEY)
    with pytest.raises(UploadVerificationError) as missing:
        reader.read()
    assert missing.value.details["reason"] == "object_missing"


def test_a_storage_without_pinned_reads_is_checked_with_head_after_each_read() -> None:
    """The unchanged object reads whole; each block is confirmed by one HEAD."""
    inner, storage = _storages("plain")
    plain = cast("PlainStorage", storage)
    etag = inner.head(KEY).etag  # type: ignore[union-attr]
    reader = RangeReader.from_storage(storage, KEY, len(VERIFIED), etag=etag, block_size=1024)
    assert io.BufferedReader(reader).read() == VERIFIED
    assert plain.reads == plain.heads == len(VERIFIED) // 1024


def test_reader_rejects_bad_arguments() -> None:
    """Negative sizes, empty blocks and bad whence values are refused."""
    with pytest.raises(ValueError, match="size"):
        RangeReader(lambda o, n: b"", -1)
    with pytest.raises(ValueError, match="block_size"):
        RangeReader(lambda o, n: b"", 1, block_size=0)
    reader = RangeReader(lambda o, n: b"x" * n, 10)
    with pytest.raises(ValueError, match="whence"):
        reader.seek(0, 7)
    with pytest.raises(OSError, match="negative"):
        reader.seek(-1)


@pytest.mark.parametrize("name", ["opus", "vorbis"])
def test_ogg_tail_check(name: str) -> None:
    """A whole Ogg file is complete; any cut inside its last page is not; damage is unknown."""
    data = encode_tone(name, 1.5)
    assert ogg_tail_is_complete(data[-OGG_TAIL_BYTES:]) is True
    for cut in (1, 10, 100, len(data) // 3):
        assert ogg_tail_is_complete(data[:-cut]) is False
    damaged = bytearray(data)
    damaged[len(data) // 2] ^= 0xFF
    assert ogg_tail_is_complete(bytes(damaged)) in {None, False}
    assert ogg_tail_is_complete(b"no pages here") is None


def _ogg_crc_by_the_book(data: bytes) -> int:
    """Ogg's CRC-32 bit by bit, as the specification defines it."""
    crc = 0
    for byte in data:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) & 0xFFFFFFFF if crc & 0x80000000 else crc << 1
    return crc


@given(st.binary(max_size=600))
def test_ogg_crc_is_the_specifications(data: bytes) -> None:
    """The CRC (zlib's, over bit-reversed bytes) agrees with the bit-by-bit definition."""
    assert _ogg_crc(data) == _ogg_crc(bytearray(data)) == _ogg_crc_by_the_book(data)


def test_ogg_crc_check_value() -> None:
    """CRC-32 with Ogg's parameters gives 0x89A1897F for the standard check input."""
    assert _ogg_crc(b"123456789") == 0x89A1897F


_FALSE_PAGE = b"OggS\x00"  # a capture pattern and version that start no valid page


def test_false_page_starts_before_the_pages_are_skipped() -> None:
    """Up to 31 false capture patterns before the real pages: the verdict still stands."""
    data = encode_tone("opus", 1.5)
    assert ogg_tail_is_complete(_FALSE_PAGE * 31 + data) is True
    assert ogg_tail_is_complete(_FALSE_PAGE * 31 + data[:-10]) is False


def test_a_tail_packed_with_false_page_starts_is_not_searched_to_its_end() -> None:
    """Past 32 false capture patterns the tail is given up on: no verdict, not a cut."""
    data = encode_tone("opus", 1.5)
    assert ogg_tail_is_complete(_FALSE_PAGE * 32 + data[:-10]) is None


def test_a_hostile_ogg_tail_is_inspected() -> None:
    """A real file then 130 KB of false page starts (each CRC-checked once, a minute of CPU).

    The search now stops after 32 of them with no verdict (the test above
    shows the bound), so the file is inspected as the audio it holds.
    """
    junk = (_FALSE_PAGE * (OGG_TAIL_BYTES // len(_FALSE_PAGE) + 1))[:OGG_TAIL_BYTES]
    data = encode_tone("opus", 1.0) + junk
    assert ogg_tail_is_complete(junk) is None
    assert inspect_audio(io.BytesIO(data)).duration_seconds == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("head", "name"),
    [
        (b"RIFF\0\0\0\0WAVEfmt ", "wav"),
        (b"\0\0\0\x1cftypM4A \0\0\0\0", "m4a"),
        (b"\0\0\0\x1cftypisom\0\0\0\0", "mp4"),
        (b"\0\0\0\x1cftyp3gp4\0\0\0\0", "3gp"),
        (b"\0\0\0\x1cftyp3g2a\0\0\0\0", "3g2"),
        (b"\0\0\0\x1cftypqt  \0\0\0\0", "mov"),
        (b"OggS\0\x02", "ogg"),
        (b"fLaC\0\0\0\x22", "flac"),
        (b"\x1a\x45\xdf\xa3\x9f", "webm"),
        (b"caff\0\x01", "caf"),
        (b"#!AMR\n<", "amr"),
        (b"#!AMR-WB\n", "amr-wb"),
        (b"ID3\x04\0", "mp3"),
        (b"\xff\xfb\x90\x64", "mp3"),
        (b"\xff\xf1\x50\x80", "aac"),
        (b"\xff\x00", None),
        (b"<html>", None),
        (b"", None),
    ],
)
def test_sniff_container(head: bytes, name: str | None) -> None:
    """Leading bytes name the container they start, or nothing."""
    assert sniff_container(head) == name
