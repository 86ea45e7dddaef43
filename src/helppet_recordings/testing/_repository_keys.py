"""The repository contract's lookups by key and purging.

Idempotency keys, staging keys, the storage key walk, and scrubbing
soft-deleted recordings. Part of
:class:`~helppet_recordings.testing.repository_contract.RepositoryContract`,
which supplies the ``repository`` fixture.
"""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from helppet_recordings.errors import DuplicateRecordingError
from helppet_recordings.models import RecordingFilter
from helppet_recordings.ports import RecordingRepository
from helppet_recordings.status import RecordingStatus
from helppet_recordings.testing._repository_basics import assert_duplicate
from helppet_recordings.testing.factories import BASE_TIME, make_recording


class KeysAndPurgingContract:
    """Idempotency, staging and storage keys, and purging."""

    def test_idempotency_keys_are_unique_per_user(self, repository: RecordingRepository) -> None:
        """One user cannot hold two recordings with one idempotency key; two users can."""
        user = uuid.uuid4()
        first = make_recording(recorded_by_user_id=user, idempotency_key="retry-1")
        repository.add(first)
        again = make_recording(recorded_by_user_id=user, idempotency_key="retry-1")
        with pytest.raises(DuplicateRecordingError, match=r"idempotency|exists|already") as caught:
            repository.add(again)
        assert_duplicate(caught.value, "idempotency_key")
        assert repository.get(again.id) is None
        repository.add(make_recording(idempotency_key="retry-1"))
        assert repository.find_by_idempotency_key(user, "retry-1") == first
        assert repository.find_by_idempotency_key(user, "retry-2") is None
        assert repository.find_by_idempotency_key(uuid.uuid4(), "retry-1") is None

    def test_racing_adds_with_one_idempotency_key_keep_one(
        self, repository: RecordingRepository
    ) -> None:
        """Many threads adding with the same user and key: exactly one row lands."""
        user = uuid.uuid4()
        threads = 12
        barrier = threading.Barrier(threads)

        def attempt(_: int) -> bool:
            recording = make_recording(recorded_by_user_id=user, idempotency_key="k")
            barrier.wait()
            try:
                repository.add(recording)
            except DuplicateRecordingError:
                return False
            return True

        with ThreadPoolExecutor(threads) as pool:
            results = list(pool.map(attempt, range(threads)))
        assert results.count(True) == 1
        assert repository.find(RecordingFilter(user_id=user), limit=50, offset=0).total == 1

    def test_two_writers_replacing_the_upload_id_cannot_both_land(
        self, repository: RecordingRepository
    ) -> None:
        """A write replacing ``multipart_upload_id`` loses once another replaced it first."""
        recording = make_recording(multipart_upload_id="aborted")
        repository.add(recording)
        first = recording.copy(multipart_upload_id="first", upload_expires_at=BASE_TIME)
        second = recording.copy(multipart_upload_id="second", upload_expires_at=BASE_TIME)
        status = recording.status
        assert repository.save(first, expected_status=status, previous=recording)
        assert not repository.save(second, expected_status=status, previous=recording)
        stored = repository.get(recording.id)
        assert stored is not None
        assert stored.multipart_upload_id == "first"
        # A write that leaves the id alone, and one from the id as stored, land as before.
        later = recording.copy(upload_expires_at=BASE_TIME + dt.timedelta(hours=1))
        assert repository.save(later, expected_status=status, previous=recording)
        assert repository.save(
            stored.copy(multipart_upload_id=None), expected_status=status, previous=stored
        )
        stored = repository.get(recording.id)
        assert stored is not None
        assert stored.multipart_upload_id is None

    def test_find_by_upload_key(self, repository: RecordingRepository) -> None:
        """A recording is found by the staging key its ticket names; other keys find nothing."""
        recording = make_recording(upload_key="recordings/staging/u/a.m4a")
        repository.add(recording)
        repository.add(make_recording())
        found = repository.find_by_upload_key("recordings/staging/u/a.m4a")
        assert found is not None and found.id == recording.id
        assert repository.find_by_upload_key(recording.s3_key) is None
        assert repository.find_by_upload_key("recordings/staging/u/b.m4a") is None

    def test_list_by_key_walks_keys_in_order(self, repository: RecordingRepository) -> None:
        """Keys under a prefix come back in code point order, page after page, each after ``after``.

        The walk is bounded: a backend whose ``after`` is inclusive fails here
        instead of returning the same page forever.
        """
        keys = ["p/a", "p/B", "p/b", "p/é", "p/a/1", "q/a", "p/Z"]
        for key in keys:
            repository.add(make_recording(s3_key=key))
        expected = sorted(k for k in keys if k.startswith("p/"))
        walked: list[str] = []
        after: str | None = None
        for _ in range(len(expected) + 1):  # a correct walk of pages of 2 ends well within this
            page = [r.s3_key for r in repository.list_by_key(prefix="p/", after=after, limit=2)]
            if not page:
                break
            assert len(page) <= 2, f"list_by_key(limit=2) returned {len(page)} recordings"
            assert after is None or page[0] > after, (
                f"list_by_key(after={after!r}) returned {page[0]!r}: only keys greater than "
                "after may come back (after is exclusive), or a walk never ends"
            )
            walked.extend(page)
            after = page[-1]
        else:
            pytest.fail(f"list_by_key's pages did not end after {len(expected) + 1} pages")
        assert walked == expected
        rest = repository.list_by_key(prefix="p/", after="p/a", limit=10)
        assert [r.s3_key for r in rest] == [k for k in expected if k > "p/a"]
        exact = repository.list_by_key(prefix="p/a", after=None, limit=1)
        assert [r.s3_key for r in exact] == ["p/a"]
        past_the_prefix = repository.list_by_key(prefix="p/a", after="p/a", limit=10)
        assert [r.s3_key for r in past_the_prefix] == ["p/a/1"], (
            "after equal to the prefix is exclusive too: the key equal to both must not return"
        )

    def test_purging_scrubs_deleted_recordings_once(self, repository: RecordingRepository) -> None:
        """Only soft-deleted, unpurged recordings deleted before the cutoff are purgeable."""
        cutoff = BASE_TIME + dt.timedelta(days=30)
        old = make_recording(transcript_text="secret", status=RecordingStatus.UPLOADED)
        recent = make_recording()
        live = make_recording()
        for recording in (old, recent, live):
            repository.add(recording)
        for recording, deleted_at in ((old, BASE_TIME), (recent, cutoff + dt.timedelta(days=1))):
            repository.save(
                recording.copy(is_deleted=True, deleted_at=deleted_at),
                expected_status=recording.status,
            )
        purgeable = repository.list_purgeable(deleted_before=cutoff, limit=10)
        assert [r.id for r in purgeable] == [old.id]
        scrubbed = purgeable[0].copy(transcript_text=None, purged_at=cutoff)
        assert repository.mark_purged(scrubbed) is True
        assert repository.get(old.id) == scrubbed
        assert repository.mark_purged(scrubbed) is False
        assert repository.mark_purged(live.copy(purged_at=cutoff)) is False
        assert repository.list_purgeable(deleted_before=cutoff, limit=10) == []
