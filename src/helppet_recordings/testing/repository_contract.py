"""The contract every RecordingRepository backend passes.

A backend's test module subclasses :class:`RepositoryContract` and supplies a
``repository`` fixture that yields an empty repository.

The audit trail and statistics tests expect the repository empty of
recordings, but not of audit entries (they use fresh recording ids). A
repository of the port alone (``save`` and ``mark_purged`` without
``audit=``) passes too: the audited-write cases run as ``[entry after the
change]``, the way the service writes to it, and their ``[atomic]`` twins,
for repositories that declare :mod:`~helppet_recordings.audited_writes`, are
skipped with that reason.

The tests live in one class per concern, which :class:`RepositoryContract`
combines: storing (``_repository_basics``), listing and paging
(``_repository_listing``), claims (``_repository_claims``), keys and
purging (``_repository_keys``), a change written with its audit entry
(``_repository_audited_writes``), and the audit trail and statistics
(``_repository_audit``).
"""

from __future__ import annotations

import pytest

from helppet_recordings.ports import RecordingRepository
from helppet_recordings.testing._repository_audit import AuditAndStatsContract
from helppet_recordings.testing._repository_audited_writes import AuditedWritesContract
from helppet_recordings.testing._repository_basics import StoringContract
from helppet_recordings.testing._repository_claims import ClaimingContract
from helppet_recordings.testing._repository_keys import KeysAndPurgingContract
from helppet_recordings.testing._repository_listing import ListingContract

__all__ = ["RepositoryContract"]


# pytest runs inherited tests in reverse MRO order, so the bases are listed last concern
# first: a run starts with storing and ends with statistics.
class RepositoryContract(
    AuditAndStatsContract,
    AuditedWritesContract,
    KeysAndPurgingContract,
    ClaimingContract,
    ListingContract,
    StoringContract,
):
    """Behaviour shared by every repository backend."""

    @pytest.fixture
    def repository(self) -> RecordingRepository:
        """Yield an empty repository of the backend under test."""
        raise NotImplementedError
