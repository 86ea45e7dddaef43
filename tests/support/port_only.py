"""A repository written against the port only: no ``audit=`` on its writes (hand-written)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from helppet_recordings import InMemoryRepository
from helppet_recordings.audit import AuditEntry
from helppet_recordings.errors import RepositoryUnavailableError
from helppet_recordings.models import Recording
from helppet_recordings.status import RecordingStatus


class PortOnlyRepository:
    """An in-memory repository seen through the ``RecordingRepository`` port alone.

    ``save`` and ``mark_purged`` take no ``audit=`` and nothing declares
    ``AuditedWrites``, as in a host's own repository written against the port.
    While ``audit_fails`` is set, ``record_audit`` raises DATABASE_UNAVAILABLE.
    """

    def __init__(self, inner: InMemoryRepository | None = None) -> None:
        self.inner = inner if inner is not None else InMemoryRepository()
        self.audit_fails = False

    def __getattr__(self, name: str) -> Any:
        if name == "supports_atomic_audit":  # the wrapped repository's declaration is not ours
            raise AttributeError(name)
        return getattr(self.inner, name)

    def save(
        self,
        recording: Recording,
        *,
        expected_status: RecordingStatus,
        previous: Recording | None = None,
        expected_lease: dt.datetime | None = None,
    ) -> bool:
        """The port's compare-and-set write."""
        return self.inner.save(
            recording,
            expected_status=expected_status,
            previous=previous,
            expected_lease=expected_lease,
        )

    def mark_purged(self, recording: Recording) -> bool:
        """The port's purge."""
        return self.inner.mark_purged(recording)

    def record_audit(self, entry: AuditEntry) -> None:
        """Append ``entry``, or fail as an unreachable database would."""
        if self.audit_fails:
            raise RepositoryUnavailableError("injected outage", retry_after=2)
        self.inner.record_audit(entry)
