"""The storage as the batch jobs see it: every call counted for the progress display."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from helppet_recordings.cli._output import Advance
from helppet_recordings.environment import Backends
from helppet_recordings.service import RecordingService

if TYPE_CHECKING:
    from helppet_recordings.models import StoredObject
    from helppet_recordings.ports import RecordingStorage


class _ObservedStorage:
    """The storage, counting what a job does with it (for progress); all else passes through."""

    def __init__(self, inner: RecordingStorage, advance: Advance) -> None:
        self._inner = inner
        self._advance = advance

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def head(self, key: str) -> StoredObject | None:
        """HEAD the object, counting it."""
        found = self._inner.head(key)
        self._advance(1)
        return found

    def delete(self, key: str) -> None:
        """Delete the object, counting it."""
        self._inner.delete(key)
        self._advance(1)

    def iter_objects(self, prefix: str) -> Iterator[StoredObject]:
        """Yield the objects under ``prefix``, counting each."""
        for stored in self._inner.iter_objects(prefix):
            self._advance(1)
            yield stored


def observed(backends: Backends, advance: Advance) -> RecordingService:
    """Return a service over the backends whose storage calls ``advance`` as it works."""
    return RecordingService(
        storage=_ObservedStorage(backends.storage, advance),
        repository=backends.repository,
        settings=backends.service.settings,
    )
