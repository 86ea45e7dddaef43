"""The repository contract's sweeps and claims: stale uploads and transcription work.

Part of :class:`~helppet_recordings.testing.repository_contract.RepositoryContract`,
which supplies the ``repository`` fixture.
"""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from helppet_recordings.models import Recording
from helppet_recordings.ports import RecordingRepository
from helppet_recordings.status import RecordingStatus
from helppet_recordings.testing.factories import BASE_TIME, make_recording


class ClaimingContract:
    """Listing and claiming stale uploads and ready work, also under races."""

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

    def test_claiming_stale_uploads_leases_them(self, repository: RecordingRepository) -> None:
        """A claim takes stale uploads once: their deadline and their lease become the lease."""
        now = BASE_TIME + dt.timedelta(hours=3)
        lease = now + dt.timedelta(minutes=5)
        stale = [make_recording(upload_expires_at=now - dt.timedelta(minutes=m)) for m in (1, 3, 2)]
        fresh = make_recording(upload_expires_at=now + dt.timedelta(minutes=1))
        for recording in [*stale, fresh]:
            repository.add(recording)
        first = repository.claim_stale_uploads(now=now, limit=2, lease_until=lease)
        assert [r.id for r in first] == [stale[1].id, stale[2].id]
        assert all(r.upload_expires_at == r.lease_expires_at == lease for r in first)
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
        claimed = _claim_from_threads(
            lambda: repository.claim_stale_uploads(
                now=now, limit=3, lease_until=now + dt.timedelta(minutes=5)
            )
        )
        assert sorted(claimed) == sorted(ids)

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
        claimed = _claim_from_threads(
            lambda: repository.claim_work(
                now=now, limit=3, lease_until=now + dt.timedelta(minutes=5)
            )
        )
        assert sorted(claimed) == sorted(ids)


def _claim_from_threads(claim: Callable[[], list[Recording]], threads: int = 8) -> list[uuid.UUID]:
    """Start ``threads`` claimers at once, each claiming until nothing is left; every id taken."""
    barrier = threading.Barrier(threads)

    def drain(_: int) -> list[uuid.UUID]:
        barrier.wait()
        taken: list[uuid.UUID] = []
        while batch := claim():
            taken.extend(r.id for r in batch)
        return taken

    with ThreadPoolExecutor(threads) as pool:
        return [rid for taken in pool.map(drain, range(threads)) for rid in taken]
