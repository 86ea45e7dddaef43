"""The repository contract's audit trail and statistics.

These tests expect the repository empty of recordings, but not of audit
entries (they use fresh recording ids). Part of
:class:`~helppet_recordings.testing.repository_contract.RepositoryContract`,
which supplies the ``repository`` fixture. A change written together with its
entry (``[atomic]`` and ``[entry after the change]``) is tested in
:mod:`~helppet_recordings.testing._repository_audited_writes`.
"""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from helppet_recordings import audit
from helppet_recordings.audit import AuditEntry
from helppet_recordings.errors import DuplicateRecordingError
from helppet_recordings.models import Recording
from helppet_recordings.ports import RecordingRepository
from helppet_recordings.stats import Distribution
from helppet_recordings.status import RecordingStatus
from helppet_recordings.testing.factories import BASE_TIME, make_recording


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


class AuditAndStatsContract:
    """The append-only audit trail and the windowed statistics."""

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

    def test_stats_count_an_upload_deleted_before_it_arrived_as_failed(
        self, repository: RecordingRepository
    ) -> None:
        """Deleted while ``uploading`` (purged or not): failed without audio, not in flight."""
        minute = dt.timedelta(minutes=1)
        rows = [
            make_recording(created_at=BASE_TIME),  # still uploading, live
            make_recording(created_at=BASE_TIME + minute, is_deleted=True, deleted_at=BASE_TIME),
            make_recording(
                created_at=BASE_TIME + 2 * minute,
                is_deleted=True,
                deleted_at=BASE_TIME,
                purged_at=BASE_TIME + dt.timedelta(days=1),
                original_filename=None,
            ),
            make_recording(
                created_at=BASE_TIME + 3 * minute,
                status=RecordingStatus.UPLOADED,
                verified_at=BASE_TIME,
                file_size_bytes=100,
            ),
            make_recording(created_at=BASE_TIME + 4 * minute, status=RecordingStatus.FAILED),
        ]
        for recording in rows:
            repository.add(recording)
        stats = repository.stats(since=None, until=None)
        assert stats.by_status == {
            RecordingStatus.UPLOADING: 1,
            RecordingStatus.UPLOADED: 1,
            RecordingStatus.PROCESSING: 0,
            RecordingStatus.TRANSCRIBED: 0,
            RecordingStatus.FAILED: 3,
        }
        uploads = stats.uploads
        assert (uploads.initiated, uploads.verified) == (5, 1)
        assert (uploads.failed_without_audio, uploads.uploading) == (3, 1)
        assert uploads.success_rate == pytest.approx(0.25)
        later = repository.stats(since=rows[2].created_at, until=None)
        assert later.by_status[RecordingStatus.FAILED] == 2
        assert (later.uploads.failed_without_audio, later.uploads.uploading) == (2, 0)

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
