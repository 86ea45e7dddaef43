"""``PinnedReadsContract``: the mixin for backends whose ranged reads pin an ETag."""

from __future__ import annotations

import pytest

from helppet_recordings.ports import RecordingStorage
from helppet_recordings.storage_capabilities import PinnedReads
from helppet_recordings.testing._storage_basics import AUDIO, PutObject, StorageFixtures, _md5


class PinnedReadsContract(StorageFixtures):
    """``read_pinned``: ranged reads that answer only from the object with the ETag given."""

    pinned_prefix = "recordings/u/pinned/"

    def pinned(self, storage: RecordingStorage) -> PinnedReads:
        """The backend as the optional ``PinnedReads`` port."""
        assert isinstance(storage, PinnedReads)
        return storage

    def etag(self, storage: RecordingStorage, key: str) -> str:
        """The ETag HEAD reports for ``key``, as completion would have verified it."""
        stored = storage.head(key)
        assert stored is not None
        assert stored.etag is not None
        return stored.etag

    def test_a_pinned_read_returns_what_read_range_does(
        self, storage: RecordingStorage, put_object: PutObject
    ) -> None:
        """With the object's own ETag: the asked bytes, fewer at the end, none past it."""
        key = f"{self.pinned_prefix}same.wav"
        put_object(key, AUDIO, "audio/wav")
        etag, pinned = self.etag(storage, key), self.pinned(storage)
        assert pinned.read_pinned(key, etag=etag, offset=0, length=12) == AUDIO[:12]
        assert pinned.read_pinned(key, etag=etag, offset=100, length=50) == AUDIO[100:150]
        assert pinned.read_pinned(key, etag=etag, offset=len(AUDIO) - 4, length=64) == AUDIO[-4:]
        assert pinned.read_pinned(key, etag=etag, offset=len(AUDIO) + 10, length=8) == b""

    def test_another_etag_reads_nothing(
        self, storage: RecordingStorage, put_object: PutObject
    ) -> None:
        """An ETag the object does not have is None, not its bytes and not an error."""
        key = f"{self.pinned_prefix}other.wav"
        put_object(key, AUDIO, "audio/wav")
        pinned = self.pinned(storage)
        assert pinned.read_pinned(key, etag=_md5(b"other bytes"), offset=0, length=16) is None

    def test_a_missing_object_is_none(self, storage: RecordingStorage) -> None:
        """A key that holds nothing is None, whatever the ETag."""
        key = f"{self.pinned_prefix}absent.wav"
        assert self.pinned(storage).read_pinned(key, etag=_md5(AUDIO), offset=0, length=16) is None

    @pytest.mark.parametrize("replacement", ["same_size", "grown", "shrunk"])
    def test_a_replaced_object_is_never_read_with_the_old_etag(
        self, storage: RecordingStorage, put_object: PutObject, replacement: str
    ) -> None:
        """Bytes written over the object (same size, longer, shorter) are not read as it."""
        key = f"{self.pinned_prefix}replaced.wav"
        put_object(key, AUDIO, "audio/wav")
        verified = self.etag(storage, key)
        body = {
            "same_size": AUDIO[::-1],
            "grown": AUDIO + b"appended",
            "shrunk": AUDIO[:-1],
        }[replacement]
        put_object(key, body, "audio/wav")
        pinned = self.pinned(storage)
        assert pinned.read_pinned(key, etag=verified, offset=0, length=len(AUDIO)) is None
        assert pinned.read_pinned(key, etag=verified, offset=64, length=16) is None
        current = self.etag(storage, key)
        assert pinned.read_pinned(key, etag=current, offset=0, length=len(body)) == body
