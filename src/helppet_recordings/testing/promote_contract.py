"""``PromoteContract``: the mixin for backends that promote a verified staging object."""

from __future__ import annotations

import functools

from helppet_recordings.models import StoredObject
from helppet_recordings.ports import RecordingStorage
from helppet_recordings.testing._storage_basics import AUDIO, PutObject, StorageFixtures
from helppet_recordings.testing._watch import Watch


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
            watching = Watch(functools.partial(_at_either, storage, source, target))
            with watching:
                moved = storage.promote(source, target, expected=expected)
            assert moved is not None
            assert watching.looks > 0
            assert watching.misses == 0, f"{watching.misses} of {watching.looks} found nothing"


def _at_either(storage: RecordingStorage, source: str, target: str) -> bool:
    """Whether HEAD finds the object at ``source``, or else at ``target``."""
    return storage.head(source) is not None or storage.head(target) is not None
