"""The contract every RecordingRepository backend passes.

A backend's test module subclasses :class:`RepositoryContract` and supplies a
``repository`` fixture that yields an empty repository.
"""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from helppet_recordings.models import Recording, RecordingFilter
from helppet_recordings.ports import RecordingRepository
from helppet_recordings.status import RecordingStatus, RecordingType
from tests.support.factories import BASE_TIME, make_recording


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
        """Adding a second recording with an existing id raises ValueError and keeps the first."""
        first = make_recording()
        repository.add(first)
        with pytest.raises(ValueError, match=r"exists|already"):
            repository.add(make_recording(id=first.id))
        assert repository.get(first.id) == first

    def test_duplicate_key_is_refused(self, repository: RecordingRepository) -> None:
        """Two recordings can never share a storage key."""
        first = make_recording()
        repository.add(first)
        second = make_recording(s3_key=first.s3_key)
        with pytest.raises(ValueError, match=r"key|already|exists"):
            repository.add(second)
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

    def test_racing_saves_leave_exactly_one_winner(self, repository: RecordingRepository) -> None:
        """Many threads moving one recording from the same status: exactly one succeeds."""
        recording = make_recording()
        repository.add(recording)
        threads = 16
        barrier = threading.Barrier(threads)

        def attempt(i: int) -> bool:
            changed = recording.copy(status=RecordingStatus.UPLOADED, file_size_bytes=i + 1)
            barrier.wait()
            return repository.save(changed, expected_status=RecordingStatus.UPLOADING)

        with ThreadPoolExecutor(threads) as pool:
            results = list(pool.map(attempt, range(threads)))
        assert results.count(True) == 1
        stored = repository.get(recording.id)
        assert stored is not None
        assert stored.status is RecordingStatus.UPLOADED
        assert stored.file_size_bytes == results.index(True) + 1
