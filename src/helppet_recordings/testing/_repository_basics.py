"""The repository contract's basics: add, get, save and duplicates.

Part of :class:`~helppet_recordings.testing.repository_contract.RepositoryContract`,
which supplies the ``repository`` fixture.
"""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from helppet_recordings.errors import DuplicateRecordingError
from helppet_recordings.models import Recording
from helppet_recordings.ports import RecordingRepository
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
        processing_attempts=2,
        processing_cycle=3,
        recording_metadata={"device_model": "iPhone 15 Pro", "nested": {"a": [1, 2.5, None]}},
        updated_at=BASE_TIME + dt.timedelta(minutes=2),
    )


def assert_duplicate(error: DuplicateRecordingError, field: str) -> None:
    """The duplicate error names the field, carries no value, and stays a ValueError."""
    assert isinstance(error, ValueError)
    assert (error.error_code, error.http_status) == ("DUPLICATE_RECORDING", 409)
    assert error.details == {"field": field}


class StoringContract:
    """Adding, loading and compare-and-set saving of single recordings."""

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
        assert_duplicate(caught.value, "id")
        assert repository.get(first.id) == first

    def test_duplicate_key_is_refused(self, repository: RecordingRepository) -> None:
        """Two recordings can never share a storage key: DuplicateRecordingError."""
        first = make_recording()
        repository.add(first)
        second = make_recording(s3_key=first.s3_key)
        with pytest.raises(DuplicateRecordingError, match=r"key|already|exists") as caught:
            repository.add(second)
        assert_duplicate(caught.value, "s3_key")
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

    @pytest.mark.parametrize("write", ["changed columns", "every column"])
    def test_save_with_expected_lease_writes_only_under_that_lease(
        self, repository: RecordingRepository, write: str
    ) -> None:
        """A worker's write lands while the stored lease is its claim, not after a takeover."""
        claim = BASE_TIME + dt.timedelta(minutes=5, microseconds=123)
        recording = make_recording(
            status=RecordingStatus.PROCESSING, lease_expires_at=claim, processing_attempts=1
        )
        repository.add(recording)
        taken_over = recording.copy(
            lease_expires_at=claim + dt.timedelta(minutes=1), processing_attempts=2
        )
        assert repository.save(
            taken_over, expected_status=RecordingStatus.PROCESSING, previous=recording
        )
        late = recording.copy(status=RecordingStatus.FAILED, processing_error="late")
        with_previous = write == "changed columns"
        previous = recording if with_previous else None
        assert not repository.save(
            late,
            expected_status=RecordingStatus.PROCESSING,
            previous=previous,
            expected_lease=claim,
        )
        assert repository.get(recording.id) == taken_over
        current = taken_over.copy(status=RecordingStatus.FAILED, processing_error="theirs")
        assert repository.save(
            current,
            expected_status=RecordingStatus.PROCESSING,
            previous=taken_over if with_previous else None,
            expected_lease=taken_over.lease_expires_at,
        )
        assert repository.get(recording.id) == current

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
