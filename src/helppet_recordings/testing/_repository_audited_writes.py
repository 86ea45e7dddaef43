"""The repository contract's audited writes: a change and its audit entry.

Part of
:class:`~helppet_recordings.testing.repository_contract.RepositoryContract`,
which supplies the ``repository`` fixture; like the rest of the audit cases
they use fresh recording ids.

An audited change is written the way the service writes it to the
repository under test, and each test says which way in its id:
``[atomic]`` with the entry in the write's transaction, for a repository
that declares :class:`~helppet_recordings.audited_writes.AuditedWrites`;
``[entry after the change]``, the port's write and then ``record_audit``, for
every repository (a repository of the port alone gets exactly that). The
``[atomic]`` cases of a repository without the capability are skipped, with
that reason. Both ways run the same test bodies, so they live together.
"""

from __future__ import annotations

import uuid
from typing import cast

import attrs
import pytest

from helppet_recordings import audit
from helppet_recordings.audit import AuditEntry
from helppet_recordings.audited_writes import AuditedWrites, stores_audit_atomically
from helppet_recordings.errors import DuplicateRecordingError
from helppet_recordings.models import Recording
from helppet_recordings.ports import RecordingRepository
from helppet_recordings.status import RecordingStatus
from helppet_recordings.testing.factories import BASE_TIME, make_recording


class _AuditedWrites:
    """An audited change written as the service writes it: atomically, or the entry after it."""

    def __init__(self, repository: RecordingRepository, *, atomic: bool) -> None:
        self.repository = repository
        self.atomic = atomic

    def save(
        self,
        recording: Recording,
        *,
        expected_status: RecordingStatus,
        previous: Recording | None,
        audit: AuditEntry,
    ) -> bool:
        """Store ``recording`` with a compare-and-set, and ``audit`` with it or right after it."""
        if self.atomic:
            return cast("AuditedWrites", self.repository).save(
                recording, expected_status=expected_status, previous=previous, audit=audit
            )
        if not self.repository.save(recording, expected_status=expected_status, previous=previous):
            return False
        self.repository.record_audit(audit)
        return True

    def mark_purged(self, recording: Recording, *, audit: AuditEntry) -> bool:
        """Purge ``recording``, and store ``audit`` with the purge or right after it."""
        if self.atomic:
            return cast("AuditedWrites", self.repository).mark_purged(recording, audit=audit)
        if not self.repository.mark_purged(recording):
            return False
        self.repository.record_audit(audit)
        return True


_NOT_ATOMIC = (
    "the repository does not declare AuditedWrites (save and mark_purged without audit=, "
    "see helppet_recordings.audited_writes): the service writes each audit entry right "
    "after its change, which the [entry after the change] cases test"
)


class AuditedWritesContract:
    """A change with its audit entry: both stored, or neither (atomic), as each way can."""

    @pytest.fixture(params=["atomic", "entry after the change"])
    def audited_writes(
        self, request: pytest.FixtureRequest, repository: RecordingRepository
    ) -> _AuditedWrites:
        """The audited writes of one of the two ways; ``atomic`` only if the repository has it."""
        atomic = request.param == "atomic"
        if atomic and not stores_audit_atomically(repository):
            pytest.skip(_NOT_ATOMIC)
        return _AuditedWrites(repository, atomic=atomic)

    @pytest.mark.parametrize("written", ["changed fields", "every field"])
    def test_a_save_with_an_entry_stores_both(
        self, repository: RecordingRepository, audited_writes: _AuditedWrites, written: str
    ) -> None:
        """The change and its entry are both stored, by the one call or the write then its entry."""
        recording = make_recording(status=RecordingStatus.UPLOADED)
        repository.add(recording)
        deleted = recording.copy(is_deleted=True, deleted_at=BASE_TIME)
        entry = _entry(recording.id, audit.RECORDING_DELETED)
        previous = recording if written == "changed fields" else None
        assert audited_writes.save(
            deleted, expected_status=recording.status, previous=previous, audit=entry
        )
        stored = repository.get(recording.id)
        assert stored is not None
        assert stored.is_deleted
        assert repository.audit_trail(recording.id) == [entry]

    def test_a_save_that_loses_stores_no_entry(
        self, repository: RecordingRepository, audited_writes: _AuditedWrites
    ) -> None:
        """A compare-and-set that finds another status writes neither the change nor the entry."""
        recording = make_recording(status=RecordingStatus.UPLOADED)
        repository.add(recording)
        deleted = recording.copy(is_deleted=True, deleted_at=BASE_TIME)
        entry = _entry(recording.id, audit.RECORDING_DELETED)
        assert not audited_writes.save(
            deleted, expected_status=RecordingStatus.PROCESSING, previous=recording, audit=entry
        )
        assert repository.get(recording.id) == recording
        assert repository.audit_trail(recording.id) == []

    @pytest.mark.parametrize("written", ["changed fields", "every field"])
    def test_an_entry_that_cannot_be_stored_is_refused(
        self, repository: RecordingRepository, audited_writes: _AuditedWrites, written: str
    ) -> None:
        """An entry whose id is taken is refused: with the write, it undoes the write too."""
        recording = make_recording(status=RecordingStatus.FAILED, verified_at=BASE_TIME)
        repository.add(recording)
        taken = _entry(recording.id, audit.TRANSCRIPT_READ)
        repository.record_audit(taken)
        reprocessed = recording.copy(status=RecordingStatus.UPLOADED, processing_attempts=0)
        entry = attrs.evolve(_entry(recording.id, audit.RECORDING_REPROCESSED), id=taken.id)
        previous = recording if written == "changed fields" else None
        with pytest.raises(DuplicateRecordingError):
            audited_writes.save(
                reprocessed, expected_status=recording.status, previous=previous, audit=entry
            )
        stored = repository.get(recording.id)
        assert stored is not None
        if audited_writes.atomic:
            assert stored == recording  # neither is stored
        else:
            assert stored.status is RecordingStatus.UPLOADED  # the change stands: a known gap
        assert repository.audit_trail(recording.id) == [taken]

    def test_a_purge_with_an_entry_stores_both_or_neither(
        self, repository: RecordingRepository, audited_writes: _AuditedWrites
    ) -> None:
        """A purge and its entry: both stored; neither when refused; a taken entry id refused."""
        recording = make_recording(status=RecordingStatus.TRANSCRIBED, transcript_text="secret")
        repository.add(recording)
        scrubbed = recording.scrubbed(BASE_TIME)
        entry = _entry(recording.id, audit.RECORDING_PURGED)
        assert not audited_writes.mark_purged(scrubbed, audit=entry)  # not deleted: not purgeable
        assert repository.audit_trail(recording.id) == []
        deleted = recording.copy(is_deleted=True, deleted_at=BASE_TIME)
        assert repository.save(deleted, expected_status=recording.status)
        taken = _entry(recording.id, audit.RECORDING_DELETED)
        repository.record_audit(taken)
        with pytest.raises(DuplicateRecordingError):
            audited_writes.mark_purged(scrubbed, audit=attrs.evolve(entry, id=taken.id))
        if audited_writes.atomic:
            assert repository.get(recording.id) == deleted  # the purge was undone with it
            assert audited_writes.mark_purged(scrubbed, audit=entry)
        else:  # the purge stands (a known gap); its entry is written again on its own
            repository.record_audit(entry)
        stored = repository.get(recording.id)
        assert stored is not None
        assert stored.purged_at is not None
        assert repository.audit_trail(recording.id) == [taken, entry]


def _entry(recording_id: uuid.UUID, action: str) -> AuditEntry:
    """A system entry for ``recording_id`` at ``BASE_TIME``."""
    return AuditEntry(recording_id=recording_id, action=action, actor_user_id=None, at=BASE_TIME)
