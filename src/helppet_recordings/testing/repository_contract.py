"""The contract every RecordingRepository backend passes.

A backend's test module subclasses :class:`RepositoryContract` and supplies a
``repository`` fixture that yields an empty repository.

Besides the port's methods, a backend provides keyset paging,
``find_page(recording_filter, *, limit, after)`` (see :class:`KeysetPaging`).

The audit trail and statistics tests expect the repository empty of
recordings, but not of audit entries (they use fresh recording ids).
"""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol, cast

import pytest

from helppet_recordings import audit
from helppet_recordings.audit import AuditEntry
from helppet_recordings.errors import DuplicateRecordingError
from helppet_recordings.models import Recording, RecordingFilter, RecordingPage
from helppet_recordings.ports import RecordingRepository
from helppet_recordings.stats import Distribution
from helppet_recordings.status import RecordingStatus, RecordingType
from helppet_recordings.testing.factories import BASE_TIME, make_recording


def _full_recording() -> Recording:
    """A recording with every optional field set, to check nothing is lost on the way."""
    return make_recording(
        appointment_id=uuid.uuid4(),
        visit_id=uuid.uuid4(),
        recording_type=RecordingType.DICTATION,
        status=RecordingStatus.TRANSCRIBED,
        original_filename="Zoë's visit — Bello.m4a",
        file_size_bytes=2_048_576,
        duration_seconds=125.3,
        transcript_text="The dog is fine. " * 200,
        transcript_confidence=0.93,
        transcript_language="en-US",
        transcription_service="whisper",
        processing_started_at=BASE_TIME + dt.timedelta(minutes=1),
        processing_completed_at=BASE_TIME + dt.timedelta(minutes=2, microseconds=7),
        processing_error=None,
        recording_metadata={"device_model": "iPhone 15 Pro", "nested": {"a": [1, 2.5, None]}},
        updated_at=BASE_TIME + dt.timedelta(minutes=2),
    )


class KeysetPaging(Protocol):
    """Keyset paging, which the contract checks on every backend."""

    def find_page(
        self,
        recording_filter: RecordingFilter,
        *,
        limit: int,
        after: tuple[dt.datetime, uuid.UUID] | None = None,
    ) -> RecordingPage:
        """Return up to ``limit`` live matches strictly after ``after``, newest first.

        ``after`` is a ``(created_at, id)`` position; ``total`` counts every
        live recording matching the filter.
        """
        ...


def _walk(
    repository: KeysetPaging, recording_filter: RecordingFilter, *, limit: int
) -> tuple[list[list[uuid.UUID]], set[int]]:
    """Page through a listing with ``find_page``; return each page's ids and the totals seen.

    Fails, rather than looping for ever, if the pages do not end.
    """
    pages: list[list[uuid.UUID]] = []
    totals: set[int] = set()
    after: tuple[dt.datetime, uuid.UUID] | None = None
    for _ in range(100):
        page = repository.find_page(recording_filter, limit=limit, after=after)
        totals.add(page.total)
        if not page.items:
            return pages, totals
        assert len(page.items) <= limit
        pages.append([r.id for r in page.items])
        after = (page.items[-1].created_at, page.items[-1].id)
    pytest.fail(f"find_page never reached the end: {pages[-2:]}")


def _stats_rows() -> list[Recording]:
    """Seven recordings, an hour apart, whose statistics are worked out by hand in the tests."""
    hour = dt.timedelta(hours=1)
    started = BASE_TIME + dt.timedelta(days=1)

    def at(index: int, **fields: object) -> Recording:
        return make_recording(created_at=BASE_TIME + index * hour, **fields)

    def verified(index: int, status: RecordingStatus, **fields: object) -> Recording:
        return at(index, status=status, verified_at=BASE_TIME + index * hour, **fields)

    return [
        at(0),  # still uploading
        at(1, status=RecordingStatus.FAILED),  # expired: failed without audio
        verified(  # failed while processing: a successful upload, not a transcribed one
            2,
            RecordingStatus.FAILED,
            file_size_bytes=400,
            duration_seconds=40.0,
            processing_started_at=started,
            processing_completed_at=started + dt.timedelta(seconds=5),
        ),
        verified(
            3,
            RecordingStatus.UPLOADED,
            file_size_bytes=100,
            duration_seconds=10.0,
            audio_duration_seconds=9.5,
        ),
        verified(
            4,
            RecordingStatus.TRANSCRIBED,
            file_size_bytes=200,
            audio_duration_seconds=20.5,
            processing_started_at=started,
            processing_completed_at=started + dt.timedelta(seconds=30, microseconds=250_000),
        ),
        verified(  # soft-deleted recordings still count
            5,
            RecordingStatus.TRANSCRIBED,
            file_size_bytes=300,
            duration_seconds=30.0,
            audio_duration_seconds=29.5,
            processing_started_at=started,
            processing_completed_at=started + dt.timedelta(seconds=60, microseconds=500_000),
            is_deleted=True,
            deleted_at=started,
        ),
        verified(  # outside the windows the tests ask about
            10,
            RecordingStatus.UPLOADED,
            file_size_bytes=10_000_000,
            duration_seconds=999.0,
        ),
    ]


def _assert_distribution(found: Distribution, **expected: float) -> None:
    """Every figure of ``found`` equals ``expected`` (floating tolerance; ``count`` exactly)."""
    assert found.count == expected.pop("count")
    assert {name: getattr(found, name) for name in expected} == pytest.approx(
        expected, rel=1e-9, abs=1e-9
    )


def _assert_duplicate(error: DuplicateRecordingError, field: str) -> None:
    """The duplicate error names the field, carries no value, and stays a ValueError."""
    assert isinstance(error, ValueError)
    assert (error.error_code, error.http_status) == ("DUPLICATE_RECORDING", 409)
    assert error.details == {"field": field}


class RepositoryContract:
    """Behaviour shared by every repository backend."""

    @pytest.fixture
    def repository(self) -> RecordingRepository:
        """Yield an empty repository of the backend under test."""
        raise NotImplementedError

    def test_satisfies_the_port(self, repository: RecordingRepository) -> None:
        """The backend structurally implements the repository protocol."""
        assert isinstance(repository, RecordingRepository)

    def test_add_then_get_round_trips_every_field(self, repository: RecordingRepository) -> None:
        """Every field, including unicode, metadata and microseconds, comes back as stored."""
        recording = _full_recording()
        repository.add(recording)
        loaded = repository.get(recording.id)
        assert loaded == recording
        assert loaded is not None
        assert loaded.created_at.tzinfo is not None
        assert loaded.created_at.utcoffset() == dt.timedelta(0)

    def test_minimal_recording_round_trips_with_nulls(
        self, repository: RecordingRepository
    ) -> None:
        """Optional fields left empty come back empty, not as defaults."""
        recording = make_recording(original_filename=None, mime_type=None, s3_url=None)
        repository.add(recording)
        assert repository.get(recording.id) == recording

    def test_get_unknown_is_none(self, repository: RecordingRepository) -> None:
        """An unknown id is None, not an error."""
        assert repository.get(uuid.uuid4()) is None

    def test_returned_objects_are_copies(self, repository: RecordingRepository) -> None:
        """Changing an object after add or get does not change what is stored."""
        recording = make_recording(recording_metadata={"a": 1})
        repository.add(recording)
        recording.filename = "changed"
        loaded = repository.get(recording.id)
        assert loaded is not None
        assert loaded.filename != "changed"
        assert loaded.recording_metadata is not None
        loaded.recording_metadata["a"] = 2
        again = repository.get(recording.id)
        assert again is not None
        assert again.recording_metadata == {"a": 1}

    def test_duplicate_id_is_refused(self, repository: RecordingRepository) -> None:
        """A second recording with an existing id: DuplicateRecordingError, the first kept."""
        first = make_recording()
        repository.add(first)
        with pytest.raises(DuplicateRecordingError, match=r"exists|already") as caught:
            repository.add(make_recording(id=first.id))
        _assert_duplicate(caught.value, "id")
        assert repository.get(first.id) == first

    def test_duplicate_key_is_refused(self, repository: RecordingRepository) -> None:
        """Two recordings can never share a storage key: DuplicateRecordingError."""
        first = make_recording()
        repository.add(first)
        second = make_recording(s3_key=first.s3_key)
        with pytest.raises(DuplicateRecordingError, match=r"key|already|exists") as caught:
            repository.add(second)
        _assert_duplicate(caught.value, "s3_key")
        assert repository.get(second.id) is None

    def test_save_with_expected_status_writes(self, repository: RecordingRepository) -> None:
        """A save guarded by the current status writes every field."""
        recording = make_recording()
        repository.add(recording)
        changed = recording.copy(
            status=RecordingStatus.UPLOADED,
            file_size_bytes=10,
            duration_seconds=1.5,
            recording_metadata={"k": "v"},
            updated_at=BASE_TIME + dt.timedelta(seconds=5),
        )
        assert repository.save(changed, expected_status=RecordingStatus.UPLOADING) is True
        assert repository.get(recording.id) == changed

    def test_save_with_stale_status_changes_nothing(self, repository: RecordingRepository) -> None:
        """A save guarded by a status the row no longer has returns False and writes nothing."""
        recording = make_recording(status=RecordingStatus.UPLOADED)
        repository.add(recording)
        changed = recording.copy(status=RecordingStatus.PROCESSING, processing_error="x")
        assert repository.save(changed, expected_status=RecordingStatus.UPLOADING) is False
        assert repository.get(recording.id) == recording

    def test_save_with_previous_writes_only_what_changed(
        self, repository: RecordingRepository
    ) -> None:
        """Given the loaded state, a save keeps what another writer changed in other fields."""
        recording = make_recording()
        repository.add(recording)
        loaded = repository.get(recording.id)
        assert loaded is not None
        lease = BASE_TIME + dt.timedelta(hours=2)
        other = loaded.copy(upload_expires_at=lease)  # another writer, same status
        assert repository.save(other, expected_status=RecordingStatus.UPLOADING) is True
        changed = loaded.copy(
            status=RecordingStatus.UPLOADED,
            file_size_bytes=10,
            recording_metadata={"k": "v"},
            updated_at=BASE_TIME + dt.timedelta(seconds=5),
        )
        assert (
            repository.save(changed, expected_status=RecordingStatus.UPLOADING, previous=loaded)
            is True
        )
        assert repository.get(recording.id) == changed.copy(upload_expires_at=lease)
        changed.recording_metadata = {"k": "changed afterwards"}
        stored = repository.get(recording.id)
        assert stored is not None
        assert stored.recording_metadata == {"k": "v"}

    def test_save_with_previous_is_still_a_compare_and_set(
        self, repository: RecordingRepository
    ) -> None:
        """Given the loaded state, a save from a status the row left writes nothing."""
        recording = make_recording()
        repository.add(recording)
        moved = recording.copy(status=RecordingStatus.UPLOADED, file_size_bytes=5)
        assert repository.save(moved, expected_status=RecordingStatus.UPLOADING) is True
        late = recording.copy(status=RecordingStatus.FAILED, processing_error="late")
        assert (
            repository.save(late, expected_status=RecordingStatus.UPLOADING, previous=recording)
            is False
        )
        unchanged = recording.copy(filename="same-status.wav")
        assert (
            repository.save(
                unchanged, expected_status=RecordingStatus.UPLOADING, previous=recording
            )
            is False
        )
        assert repository.get(recording.id) == moved

    def test_save_with_previous_refuses_new_keys(self, repository: RecordingRepository) -> None:
        """Keys never change: a save whose keys differ from the loaded ones is a ValueError."""
        recording = make_recording()
        repository.add(recording)
        for changes in ({"s3_key": "recordings/other.wav"}, {"idempotency_key": "new"}):
            with pytest.raises(ValueError, match="never change"):
                repository.save(
                    recording.copy(**changes),
                    expected_status=RecordingStatus.UPLOADING,
                    previous=recording,
                )
        assert repository.get(recording.id) == recording

    def test_save_of_missing_recording_is_false(self, repository: RecordingRepository) -> None:
        """Saving a recording that was never added returns False and creates nothing."""
        recording = make_recording()
        assert repository.save(recording, expected_status=RecordingStatus.UPLOADING) is False
        assert repository.get(recording.id) is None

    def test_soft_deleted_recordings_cannot_be_saved(self, repository: RecordingRepository) -> None:
        """Once soft-deleted, a recording is frozen: later saves return False."""
        recording = make_recording()
        repository.add(recording)
        user = recording.recorded_by_user_id
        deleted = recording.copy(is_deleted=True, deleted_at=BASE_TIME, deleted_by_user_id=user)
        assert repository.save(deleted, expected_status=RecordingStatus.UPLOADING) is True
        revived = deleted.copy(is_deleted=False, status=RecordingStatus.UPLOADED)
        assert repository.save(revived, expected_status=RecordingStatus.UPLOADING) is False
        assert repository.get(recording.id) == deleted

    def test_list_filters_orders_and_pages(self, repository: RecordingRepository) -> None:
        """Listing returns one owner's live recordings, newest first, with a filtered total."""
        user, other = uuid.uuid4(), uuid.uuid4()
        appointment, visit = uuid.uuid4(), uuid.uuid4()
        mine = [
            make_recording(
                recorded_by_user_id=user,
                created_at=BASE_TIME + dt.timedelta(seconds=i),
                appointment_id=appointment if i % 2 == 0 else None,
                visit_id=visit if i % 3 == 0 else None,
                status=RecordingStatus.UPLOADED if i < 4 else RecordingStatus.UPLOADING,
            )
            for i in range(10)
        ]
        for recording in mine:
            repository.add(recording)
        repository.add(make_recording(recorded_by_user_id=other))
        gone = make_recording(
            recorded_by_user_id=user, created_at=BASE_TIME + dt.timedelta(hours=1)
        )
        repository.add(gone)
        repository.save(
            gone.copy(is_deleted=True, deleted_at=BASE_TIME), expected_status=gone.status
        )

        page = repository.find(RecordingFilter(user_id=user), limit=3, offset=0)
        assert page.total == 10
        assert [r.id for r in page.items] == [r.id for r in mine[::-1][:3]]
        page = repository.find(RecordingFilter(user_id=user), limit=3, offset=9)
        assert [r.id for r in page.items] == [mine[0].id]
        page = repository.find(RecordingFilter(user_id=user), limit=5, offset=20)
        assert (page.items, page.total) == ([], 10)

        by_appointment = repository.find(
            RecordingFilter(user_id=user, appointment_id=appointment), limit=50, offset=0
        )
        assert {r.id for r in by_appointment.items} == {r.id for r in mine[::2]}
        assert by_appointment.total == 5
        by_visit = repository.find(
            RecordingFilter(user_id=user, visit_id=visit), limit=50, offset=0
        )
        assert {r.id for r in by_visit.items} == {mine[i].id for i in (0, 3, 6, 9)}
        by_status = repository.find(
            RecordingFilter(user_id=user, status=RecordingStatus.UPLOADED), limit=2, offset=0
        )
        assert by_status.total == 4
        assert [r.id for r in by_status.items] == [mine[3].id, mine[2].id]
        combined = RecordingFilter(
            user_id=user, appointment_id=appointment, status=RecordingStatus.UPLOADED
        )
        assert repository.find(combined, limit=50, offset=0).total == 2

    def test_list_breaks_created_at_ties_stably(self, repository: RecordingRepository) -> None:
        """Recordings created in the same instant page without repeats or gaps."""
        user = uuid.uuid4()
        for _ in range(7):
            repository.add(make_recording(recorded_by_user_id=user))
        seen = [
            r.id
            for offset in range(0, 7, 2)
            for r in repository.find(RecordingFilter(user_id=user), limit=2, offset=offset).items
        ]
        assert len(seen) == len(set(seen)) == 7

    def test_list_stale_uploads(self, repository: RecordingRepository) -> None:
        """Only live uploading recordings past their deadline are stale, oldest deadline first."""
        now = BASE_TIME + dt.timedelta(hours=3)
        stale = [
            make_recording(upload_expires_at=now - dt.timedelta(minutes=m)) for m in (5, 50, 20)
        ]
        fresh = make_recording(upload_expires_at=now + dt.timedelta(minutes=1))
        done = make_recording(
            status=RecordingStatus.UPLOADED, upload_expires_at=now - dt.timedelta(hours=1)
        )
        deleted = make_recording(upload_expires_at=now - dt.timedelta(hours=1))
        for recording in [*stale, fresh, done, deleted]:
            repository.add(recording)
        repository.save(
            deleted.copy(is_deleted=True, deleted_at=now), expected_status=RecordingStatus.UPLOADING
        )
        found = repository.list_stale_uploads(now=now, limit=10)
        assert [r.id for r in found] == [stale[1].id, stale[2].id, stale[0].id]
        assert [r.id for r in repository.list_stale_uploads(now=now, limit=2)] == [
            stale[1].id,
            stale[2].id,
        ]

    @pytest.mark.parametrize("previous_given", ["without", "with"])
    def test_racing_saves_leave_exactly_one_winner(
        self, repository: RecordingRepository, previous_given: str
    ) -> None:
        """Many threads moving one recording from the same status: exactly one succeeds."""
        recording = make_recording()
        repository.add(recording)
        threads = 16
        barrier = threading.Barrier(threads)
        previous = recording if previous_given == "with" else None

        def attempt(i: int) -> bool:
            changed = recording.copy(status=RecordingStatus.UPLOADED, file_size_bytes=i + 1)
            barrier.wait()
            return repository.save(
                changed, expected_status=RecordingStatus.UPLOADING, previous=previous
            )

        with ThreadPoolExecutor(threads) as pool:
            results = list(pool.map(attempt, range(threads)))
        assert results.count(True) == 1
        stored = repository.get(recording.id)
        assert stored is not None
        assert stored.status is RecordingStatus.UPLOADED
        assert stored.file_size_bytes == results.index(True) + 1

    # --- idempotency, sweeping, reconciling and purging --------------------------------

    def test_idempotency_keys_are_unique_per_user(self, repository: RecordingRepository) -> None:
        """One user cannot hold two recordings with one idempotency key; two users can."""
        user = uuid.uuid4()
        first = make_recording(recorded_by_user_id=user, idempotency_key="retry-1")
        repository.add(first)
        again = make_recording(recorded_by_user_id=user, idempotency_key="retry-1")
        with pytest.raises(DuplicateRecordingError, match=r"idempotency|exists|already") as caught:
            repository.add(again)
        _assert_duplicate(caught.value, "idempotency_key")
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

    def test_claiming_stale_uploads_leases_them(self, repository: RecordingRepository) -> None:
        """A claim takes stale uploads once: it pushes their deadline to the lease."""
        now = BASE_TIME + dt.timedelta(hours=3)
        lease = now + dt.timedelta(minutes=5)
        stale = [make_recording(upload_expires_at=now - dt.timedelta(minutes=m)) for m in (1, 3, 2)]
        fresh = make_recording(upload_expires_at=now + dt.timedelta(minutes=1))
        for recording in [*stale, fresh]:
            repository.add(recording)
        first = repository.claim_stale_uploads(now=now, limit=2, lease_until=lease)
        assert [r.id for r in first] == [stale[1].id, stale[2].id]
        assert all(r.upload_expires_at == lease for r in first)
        assert [repository.get(r.id) for r in first] == first
        second = repository.claim_stale_uploads(now=now, limit=2, lease_until=lease)
        assert [r.id for r in second] == [stale[0].id]
        assert repository.claim_stale_uploads(now=now, limit=2, lease_until=lease) == []
        later = lease + dt.timedelta(seconds=1)
        again = repository.claim_stale_uploads(now=later, limit=10, lease_until=later)
        assert len(again) == 4  # the three leases ran out, and the fresh one is stale now

    def test_concurrent_claims_never_overlap(self, repository: RecordingRepository) -> None:
        """Sweepers claiming at once split the stale uploads between them, without overlap."""
        now = BASE_TIME + dt.timedelta(hours=3)
        ids = set()
        for i in range(40):
            recording = make_recording(upload_expires_at=now - dt.timedelta(seconds=i + 1))
            repository.add(recording)
            ids.add(recording.id)
        threads = 8
        barrier = threading.Barrier(threads)

        def sweep(_: int) -> list[uuid.UUID]:
            barrier.wait()
            taken: list[uuid.UUID] = []
            while batch := repository.claim_stale_uploads(
                now=now, limit=3, lease_until=now + dt.timedelta(minutes=5)
            ):
                taken.extend(r.id for r in batch)
            return taken

        with ThreadPoolExecutor(threads) as pool:
            claimed = [rid for taken in pool.map(sweep, range(threads)) for rid in taken]
        assert sorted(claimed) == sorted(ids)

    def test_find_by_upload_key(self, repository: RecordingRepository) -> None:
        """A recording is found by the staging key its ticket names; other keys find nothing."""
        recording = make_recording(upload_key="recordings/staging/u/a.m4a")
        repository.add(recording)
        repository.add(make_recording())
        found = repository.find_by_upload_key("recordings/staging/u/a.m4a")
        assert found is not None and found.id == recording.id
        assert repository.find_by_upload_key(recording.s3_key) is None
        assert repository.find_by_upload_key("recordings/staging/u/b.m4a") is None

    def test_claiming_work_takes_ready_recordings_once(
        self, repository: RecordingRepository
    ) -> None:
        """Ready uploaded and expired processing recordings are claimed once, oldest lease first."""
        now = BASE_TIME + dt.timedelta(hours=3)
        lease = now + dt.timedelta(minutes=15)
        ready = [
            make_recording(
                status=RecordingStatus.UPLOADED, lease_expires_at=now - dt.timedelta(minutes=m)
            )
            for m in (1, 3)
        ]
        abandoned = make_recording(
            status=RecordingStatus.PROCESSING, lease_expires_at=now - dt.timedelta(minutes=2)
        )
        not_ready = [
            make_recording(
                status=RecordingStatus.UPLOADED, lease_expires_at=now + dt.timedelta(minutes=1)
            ),
            make_recording(status=RecordingStatus.PROCESSING, lease_expires_at=None),
            make_recording(status=RecordingStatus.UPLOADING, lease_expires_at=now),
            make_recording(status=RecordingStatus.TRANSCRIBED, lease_expires_at=now),
            make_recording(status=RecordingStatus.UPLOADED, lease_expires_at=now, is_deleted=True),
        ]
        for recording in [*ready, abandoned, *not_ready]:
            repository.add(recording)
        first = repository.claim_work(now=now, limit=2, lease_until=lease)
        assert [r.id for r in first] == [ready[1].id, abandoned.id]
        assert all(r.lease_expires_at == lease for r in first)
        assert [repository.get(r.id) for r in first] == first
        assert [r.status for r in first] == [RecordingStatus.UPLOADED, RecordingStatus.PROCESSING]
        second = repository.claim_work(now=now, limit=5, lease_until=lease)
        assert [r.id for r in second] == [ready[0].id]
        assert repository.claim_work(now=now, limit=5, lease_until=lease) == []
        later = lease + dt.timedelta(seconds=1)
        again = repository.claim_work(now=later, limit=10, lease_until=later)
        assert len(again) == 4  # three leases ran out, and the future one is ready now

    def test_concurrent_work_claims_never_overlap(self, repository: RecordingRepository) -> None:
        """Workers claiming at once split the ready recordings between them, without overlap."""
        now = BASE_TIME + dt.timedelta(hours=3)
        ids = set()
        for i in range(40):
            recording = make_recording(
                status=RecordingStatus.UPLOADED, lease_expires_at=now - dt.timedelta(seconds=i)
            )
            repository.add(recording)
            ids.add(recording.id)
        threads = 8
        barrier = threading.Barrier(threads)

        def work(_: int) -> list[uuid.UUID]:
            barrier.wait()
            taken: list[uuid.UUID] = []
            while batch := repository.claim_work(
                now=now, limit=3, lease_until=now + dt.timedelta(minutes=5)
            ):
                taken.extend(r.id for r in batch)
            return taken

        with ThreadPoolExecutor(threads) as pool:
            claimed = [rid for taken in pool.map(work, range(threads)) for rid in taken]
        assert sorted(claimed) == sorted(ids)

    def test_list_by_key_walks_keys_in_order(self, repository: RecordingRepository) -> None:
        """Keys under a prefix come back in code point order, page after page."""
        keys = ["p/a", "p/B", "p/b", "p/é", "p/a/1", "q/a", "p/Z"]
        for key in keys:
            repository.add(make_recording(s3_key=key))
        walked: list[str] = []
        after: str | None = None
        while page := repository.list_by_key(prefix="p/", after=after, limit=2):
            walked.extend(r.s3_key for r in page)
            after = page[-1].s3_key
        assert walked == sorted(k for k in keys if k.startswith("p/"))
        exact = repository.list_by_key(prefix="p/a", after=None, limit=1)
        assert [r.s3_key for r in exact] == ["p/a"]

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

    # --- keyset paging --------------------------------------------------------------

    def test_keyset_pages_cover_every_row_once_under_ties(
        self, repository: RecordingRepository
    ) -> None:
        """Many recordings in few instants: keyset pages list each once, in ``find``'s order."""
        pager = cast("KeysetPaging", repository)
        user = uuid.uuid4()
        instants = [BASE_TIME + dt.timedelta(seconds=s, microseconds=7) for s in (0, 1, 1, 3)]
        for i in range(23):
            repository.add(make_recording(recorded_by_user_id=user, created_at=instants[i % 4]))
        repository.add(make_recording(created_at=instants[1]))  # another owner's
        gone = make_recording(recorded_by_user_id=user, created_at=instants[1])
        repository.add(gone)
        repository.save(
            gone.copy(is_deleted=True, deleted_at=BASE_TIME), expected_status=gone.status
        )
        everything = repository.find(RecordingFilter(user_id=user), limit=100, offset=0)
        expected = [r.id for r in everything.items]
        assert len(expected) == 23
        for limit in (1, 5, 23, 50):
            pages, totals = _walk(pager, RecordingFilter(user_id=user), limit=limit)
            assert [rid for page in pages for rid in page] == expected
            assert all(len(page) == limit for page in pages[:-1])
            assert totals == {23}
        first = pager.find_page(RecordingFilter(user_id=user), limit=4, after=None)
        assert [r.id for r in first.items] == expected[:4]
        assert first.items == everything.items[:4]  # whole recordings, every field
        assert pager.find_page(RecordingFilter(user_id=user), limit=0, after=None).total == 23

    def test_keyset_pages_honour_every_filter(self, repository: RecordingRepository) -> None:
        """Each filter, alone and combined, pages through exactly what ``find`` lists."""
        pager = cast("KeysetPaging", repository)
        user = uuid.uuid4()
        appointment, visit = uuid.uuid4(), uuid.uuid4()
        for i in range(12):
            repository.add(
                make_recording(
                    recorded_by_user_id=user,
                    created_at=BASE_TIME + dt.timedelta(seconds=i // 3),
                    appointment_id=appointment if i % 2 == 0 else None,
                    visit_id=visit if i % 3 == 0 else None,
                    status=RecordingStatus.UPLOADED if i < 5 else RecordingStatus.UPLOADING,
                )
            )
        filters = [
            RecordingFilter(user_id=user),
            RecordingFilter(user_id=user, appointment_id=appointment),
            RecordingFilter(user_id=user, visit_id=visit),
            RecordingFilter(user_id=user, status=RecordingStatus.UPLOADED),
            RecordingFilter(user_id=user, appointment_id=appointment, visit_id=visit),
            RecordingFilter(
                user_id=user, appointment_id=appointment, status=RecordingStatus.UPLOADED
            ),
            RecordingFilter(user_id=uuid.uuid4()),
        ]
        for recording_filter in filters:
            listed = repository.find(recording_filter, limit=100, offset=0)
            pages, totals = _walk(pager, recording_filter, limit=2)
            assert [rid for page in pages for rid in page] == [r.id for r in listed.items]
            assert totals == {listed.total}
        sizes = [repository.find(f, limit=100, offset=0).total for f in filters]
        assert sizes == [12, 6, 4, 5, 2, 3, 0]

    def test_keyset_position_need_not_be_a_listed_row(
        self, repository: RecordingRepository
    ) -> None:
        """A page after a recording deleted since, or after any instant, continues from there."""
        pager = cast("KeysetPaging", repository)
        user = uuid.uuid4()
        rows = [
            make_recording(recorded_by_user_id=user, created_at=BASE_TIME + dt.timedelta(seconds=i))
            for i in range(6)
        ]
        for recording in rows:
            repository.add(recording)
        newest_first = sorted(rows, key=lambda r: r.created_at, reverse=True)
        cursor = newest_first[2]
        repository.save(
            cursor.copy(is_deleted=True, deleted_at=BASE_TIME), expected_status=cursor.status
        )
        page = pager.find_page(
            RecordingFilter(user_id=user), limit=10, after=(cursor.created_at, cursor.id)
        )
        assert [r.id for r in page.items] == [r.id for r in newest_first[3:]]
        assert page.total == 5
        india = dt.timezone(dt.timedelta(hours=5, minutes=30))
        between = (BASE_TIME + dt.timedelta(seconds=1, milliseconds=500)).astimezone(india)
        page = pager.find_page(
            RecordingFilter(user_id=user), limit=10, after=(between, uuid.UUID(int=0))
        )
        assert [r.id for r in page.items] == [rows[1].id, rows[0].id]
        past_the_end = (BASE_TIME - dt.timedelta(days=1), uuid.UUID(int=0))
        page = pager.find_page(RecordingFilter(user_id=user), limit=10, after=past_the_end)
        assert (page.items, page.total) == ([], 5)

    def test_keyset_paging_refuses_bad_arguments(self, repository: RecordingRepository) -> None:
        """A negative limit or a naive position is a programming error (ValueError)."""
        pager = cast("KeysetPaging", repository)
        listing = RecordingFilter(user_id=uuid.uuid4())
        with pytest.raises(ValueError, match="negative"):
            pager.find_page(listing, limit=-1, after=None)
        with pytest.raises(ValueError, match="timezone-aware"):
            pager.find_page(listing, limit=5, after=(BASE_TIME.replace(tzinfo=None), uuid.uuid4()))

    # --- the audit trail --------------------------------------------------------------

    def test_audit_trail_comes_back_oldest_first(self, repository: RecordingRepository) -> None:
        """Entries come back as written, oldest first; ties keep the order they were written in."""
        recording_id, other = uuid.uuid4(), uuid.uuid4()
        actor = uuid.uuid4()
        india = dt.timezone(dt.timedelta(hours=5, minutes=30))
        later = AuditEntry(
            recording_id=recording_id,
            action=audit.RECORDING_DELETED,
            actor_user_id=actor,
            at=(BASE_TIME + dt.timedelta(minutes=5)).astimezone(india),
            attributes={"status": "transcribed"},
        )
        first_tie = AuditEntry(
            recording_id=recording_id,
            action=audit.TRANSCRIPT_READ,
            actor_user_id=actor,
            at=BASE_TIME,
            attributes={"status": "transcribed", "characters": 1234},
        )
        second_tie = AuditEntry(
            recording_id=recording_id,
            action=audit.DOWNLOAD_URL_ISSUED,
            actor_user_id=actor,
            at=BASE_TIME,
            attributes={"expires_in": 3600, "ratio": 0.5, "flag": True, "none": None},
        )
        elsewhere = AuditEntry(
            recording_id=other,
            action=audit.RECORDING_PURGED,
            actor_user_id=None,
            at=BASE_TIME,
        )
        for entry in (later, first_tie, elsewhere, second_tie):
            repository.record_audit(entry)
        trail = repository.audit_trail(recording_id)
        assert trail == [first_tie, second_tie, later]
        assert all(entry.at.utcoffset() == dt.timedelta(0) for entry in trail)
        assert trail[2].at == later.at
        assert repository.audit_trail(other) == [elsewhere]

    def test_audit_trail_of_an_unknown_recording_is_empty(
        self, repository: RecordingRepository
    ) -> None:
        """A recording nobody audited has an empty trail, not an error."""
        assert repository.audit_trail(uuid.uuid4()) == []

    def test_an_audit_entry_is_stored_once(self, repository: RecordingRepository) -> None:
        """Writing the same entry twice is refused; the trail keeps one copy."""
        entry = AuditEntry(
            recording_id=uuid.uuid4(),
            action=audit.RECORDING_REPROCESSED,
            actor_user_id=None,
            at=BASE_TIME,
        )
        repository.record_audit(entry)
        with pytest.raises(DuplicateRecordingError):
            repository.record_audit(entry)
        assert repository.audit_trail(entry.recording_id) == [entry]

    def test_purging_leaves_the_audit_trail(self, repository: RecordingRepository) -> None:
        """Scrubbing a recording's row changes nothing in its trail."""
        recording = make_recording(transcript_text="secret", status=RecordingStatus.TRANSCRIBED)
        repository.add(recording)
        entries = [
            AuditEntry(
                recording_id=recording.id,
                action=action,
                actor_user_id=actor,
                at=BASE_TIME + dt.timedelta(minutes=minutes),
            )
            for minutes, action, actor in (
                (1, audit.TRANSCRIPT_READ, recording.recorded_by_user_id),
                (2, audit.RECORDING_DELETED, recording.recorded_by_user_id),
                (3, audit.RECORDING_PURGED, None),
            )
        ]
        repository.record_audit(entries[0])
        deleted = recording.copy(is_deleted=True, deleted_at=BASE_TIME)
        assert repository.save(deleted, expected_status=recording.status)
        repository.record_audit(entries[1])
        assert repository.mark_purged(deleted.scrubbed(BASE_TIME + dt.timedelta(minutes=3)))
        repository.record_audit(entries[2])
        assert repository.audit_trail(recording.id) == entries

    # --- statistics -------------------------------------------------------------------

    def test_stats_of_no_recordings(self, repository: RecordingRepository) -> None:
        """Without recordings every count is 0 and every distribution empty."""
        stats = repository.stats(since=None, until=None)
        assert stats.by_status == dict.fromkeys(RecordingStatus, 0)
        assert stats.uploads.initiated == 0
        assert stats.uploads.success_rate is None
        assert stats.file_size_bytes == Distribution()
        assert stats.processing_seconds == Distribution()

    def test_stats_count_and_spread_the_window(self, repository: RecordingRepository) -> None:
        """Counts, success rate and every distribution of a window, as worked out by hand."""
        rows = _stats_rows()
        for recording in rows:
            repository.add(recording)
        stats = repository.stats(since=None, until=rows[-1].created_at)
        assert stats.by_status == {
            RecordingStatus.UPLOADING: 1,
            RecordingStatus.UPLOADED: 1,
            RecordingStatus.PROCESSING: 0,
            RecordingStatus.TRANSCRIBED: 2,
            RecordingStatus.FAILED: 2,
        }
        uploads = stats.uploads
        assert (uploads.initiated, uploads.verified) == (6, 4)
        assert (uploads.failed_without_audio, uploads.uploading) == (1, 1)
        assert uploads.success_rate == pytest.approx(0.8)
        _assert_distribution(
            stats.file_size_bytes, count=4, min=100, p50=250, p90=370, p99=397, max=400, mean=250
        )
        _assert_distribution(
            stats.duration_seconds,
            count=3,
            min=10,
            p50=30,
            p90=38,
            p99=39.8,
            max=40,
            mean=80 / 3,
        )
        _assert_distribution(
            stats.audio_duration_seconds,
            count=3,
            min=9.5,
            p50=20.5,
            p90=27.7,
            p99=29.32,
            max=29.5,
            mean=59.5 / 3,
        )
        _assert_distribution(
            stats.processing_seconds,
            count=2,
            min=30.25,
            p50=45.375,
            p90=57.475,
            p99=60.1975,
            max=60.5,
            mean=45.375,
        )

    def test_stats_window_includes_since_and_excludes_until(
        self, repository: RecordingRepository
    ) -> None:
        """``since`` is inclusive and ``until`` exclusive, in whatever time zone they are given."""
        rows = _stats_rows()
        for recording in rows:
            repository.add(recording)
        tokyo = dt.timezone(dt.timedelta(hours=9))
        since = rows[2].created_at.astimezone(tokyo)
        stats = repository.stats(since=since, until=rows[5].created_at)
        assert stats.uploads.initiated == 3
        assert stats.by_status[RecordingStatus.FAILED] == 1
        assert stats.uploads.success_rate == 1.0
        _assert_distribution(
            stats.file_size_bytes,
            count=3,
            min=100,
            p50=200,
            p90=360,
            p99=396,
            max=400,
            mean=700 / 3,
        )
        everything = repository.stats(since=None, until=None)
        assert everything.uploads.initiated == len(rows)
        assert everything.file_size_bytes.max == 10_000_000
        late = repository.stats(
            since=rows[-1].created_at + dt.timedelta(microseconds=1), until=None
        )
        assert late.uploads.initiated == 0
        assert late.uploads.success_rate is None
