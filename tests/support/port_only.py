"""A repository written against the port only: no ``audit=`` on its writes (hand-written)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from helppet_recordings import InMemoryRepository
from helppet_recordings.models import Recording
from helppet_recordings.ports import RecordingRepository
from helppet_recordings.status import RecordingStatus


class PortOnlyRepository:
    """A repository seen through the ``RecordingRepository`` port alone.

    ``save`` and ``mark_purged`` take no ``audit=`` and nothing declares
    ``AuditedWrites``, as in a host's own repository written against the port,
    or one written before the writes took ``audit=``. It keeps its recordings
    in ``inner``: a fresh in-memory repository, or the one given (such as a
    ``tests.support.faults.FaultyRepository``, to make its calls fail).
    """

    def __init__(self, inner: RecordingRepository | None = None) -> None:
        self.inner = inner if inner is not None else InMemoryRepository()

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
