"""``PromoteContract``: the mixin for backends that promote a verified staging object."""

from __future__ import annotations

import threading

from helppet_recordings.models import StoredObject
from helppet_recordings.ports import RecordingStorage
from helppet_recordings.testing._storage_basics import AUDIO, PutObject, StorageFixtures


class PromoteContract(StorageFixtures):
    """``promote``: a verified staging object moves to its final key only if it is unchanged."""

    staging_prefix = "recordings/staging/"
    final_prefix = "recordings/u/ctx/"
    watched_promotes = 5
    """How many promotes :meth:`test_a_promote_never_hides_the_object` watches."""

    def keys(self, name: str) -> tuple[str, str]:
        """A staging key and the final key it is promoted to."""
        return f"{self.staging_prefix}{name}", f"{self.final_prefix}{name}"

    def verified(self, storage: RecordingStorage, key: str) -> StoredObject:
        """What HEAD reports for ``key``, as completion would have verified it."""
        stored = storage.head(key)
        assert stored is not None
        return stored

    def test_promote_moves_bytes_type_and_encryption(
        self, storage: RecordingStorage, put_object: PutObject
    ) -> None:
        """The target holds the bytes, type and encryption HEAD reports; the source is gone."""
        source, target = self.keys("move.wav")
        put_object(source, AUDIO, "audio/wav")
        expected = self.verified(storage, source)
        moved = storage.promote(source, target, expected=expected)
        assert moved is not None
        assert (moved.key, moved.size, moved.content_type) == (target, len(AUDIO), "audio/wav")
        assert moved.md5 == expected.md5
        assert (moved.server_side_encryption, moved.kms_key_id) == (
            expected.server_side_encryption,
            expected.kms_key_id,
        )
        assert storage.head(target) == moved
        assert storage.read_range(target, offset=0, length=len(AUDIO) + 1) == AUDIO
        assert storage.head(source) is None

    def test_changed_source_is_not_promoted(
        self, storage: RecordingStorage, put_object: PutObject
    ) -> None:
        """Bytes that replaced the source after its HEAD are not moved, and stay where they are."""
        source, target = self.keys("replayed.wav")
        put_object(source, AUDIO, "audio/wav")
        expected = self.verified(storage, source)
        replayed = AUDIO[::-1]  # same size, other bytes
        put_object(source, replayed, "audio/wav")
        assert storage.promote(source, target, expected=expected) is None
        assert storage.head(target) is None
        assert storage.read_range(source, offset=0, length=len(replayed)) == replayed

    def test_missing_source_is_none(self, storage: RecordingStorage, put_object: PutObject) -> None:
        """A source that is gone is not an error: None, and no target appears."""
        source, target = self.keys("gone.wav")
        put_object(source, AUDIO, "audio/wav")
        expected = self.verified(storage, source)
        storage.delete(source)
        assert storage.promote(source, target, expected=expected) is None
        assert storage.head(target) is None

    def test_promote_again_keeps_the_moved_object(
        self, storage: RecordingStorage, put_object: PutObject
    ) -> None:
        """A retried promote finds no source and leaves the object it moved alone."""
        source, target = self.keys("retry.wav")
        put_object(source, AUDIO, "audio/wav")
        expected = self.verified(storage, source)
        moved = storage.promote(source, target, expected=expected)
        assert moved is not None
        assert storage.promote(source, target, expected=expected) is None
        assert storage.head(target) == moved

    def test_refusal_leaves_an_existing_target_untouched(
        self, storage: RecordingStorage, put_object: PutObject
    ) -> None:
        """When the source changed, whatever the target already holds keeps its bytes."""
        source, target = self.keys("kept.wav")
        put_object(target, b"verified earlier", "audio/wav")
        before = self.verified(storage, target)
        put_object(source, AUDIO, "audio/wav")
        expected = self.verified(storage, source)
        put_object(source, AUDIO[::-1], "audio/wav")
        assert storage.promote(source, target, expected=expected) is None
        assert storage.head(target) == before
        assert storage.read_range(target, offset=0, length=64) == b"verified earlier"

    def test_a_promote_never_hides_the_object(
        self, storage: RecordingStorage, put_object: PutObject
    ) -> None:
        """Threads HEADing the source, then the target, during promotes always find the object.

        A completion looks that way (the staging key, then the final key), so
        an instant where neither key shows the object answers a concurrent
        completion "not found". The object only ever moves here, so once the
        source is gone the target must already be there.
        """
        for round_number in range(self.watched_promotes):
            source, target = self.keys(f"watched-{round_number}.wav")
            put_object(source, AUDIO, "audio/wav")
            expected = self.verified(storage, source)
            watching = _Watch(storage, source, target)
            with watching:
                moved = storage.promote(source, target, expected=expected)
            assert moved is not None
            assert watching.looks > 0
            assert watching.misses == 0, f"{watching.misses} of {watching.looks} found nothing"


class _Watch:
    """Two threads that HEAD ``source`` then ``target`` until the ``with`` block ends.

    The block starts once both have looked at least once, so they watch
    the whole of it; :attr:`misses` counts the looks that found the object
    at neither key. An error in a thread is raised when the block ends.
    """

    def __init__(self, storage: RecordingStorage, source: str, target: str) -> None:
        self.storage, self.source, self.target = storage, source, target
        self.looks = self.misses = 0
        self._errors: list[Exception] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ready = threading.Barrier(3, timeout=10)
        self._threads = [threading.Thread(target=self._watch, daemon=True) for _ in range(2)]

    def __enter__(self) -> _Watch:
        for thread in self._threads:
            thread.start()
        self._ready.wait()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)
        if self._errors:
            raise self._errors[0]

    def _watch(self) -> None:
        try:
            self._look()
            self._ready.wait()
            while not self._stop.is_set():
                self._look()
        except Exception as exc:  # noqa: BLE001 - raised in the test's thread when the block ends
            self._errors.append(exc)
            self._ready.abort()

    def _look(self) -> None:
        seen = self.storage.head(self.source) is not None
        seen = seen or self.storage.head(self.target) is not None
        with self._lock:
            self.looks += 1
            self.misses += not seen
