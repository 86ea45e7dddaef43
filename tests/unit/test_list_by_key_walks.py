"""Walking recordings by key ends, even on a repository whose ``after`` is inclusive."""

from __future__ import annotations

import pytest

from helppet_recordings import (
    InMemoryRepository,
    InMemoryStorage,
    RecordingService,
    RecordingSettings,
    RepositoryError,
)
from helppet_recordings.models import Recording
from helppet_recordings.testing._repository_keys import KeysAndPurgingContract
from helppet_recordings.testing.clock import FakeClock
from helppet_recordings.testing.factories import make_recording

CALLS_BEFORE_GIVING_UP = 200  # far more than any walk here needs: stops a loop that never ends


class InclusiveAfter(InMemoryRepository):
    """Treats ``after`` as inclusive (``>=``), a subtle bug that repeats the last key forever."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def list_by_key(self, *, prefix: str, after: str | None, limit: int) -> list[Recording]:
        """Keys under ``prefix`` from ``after`` on, ``after`` itself included."""
        self.calls += 1
        if self.calls > CALLS_BEFORE_GIVING_UP:
            pytest.fail("list_by_key was called again and again: the walk never ended")
        with self._lock:
            rows = [
                row.copy()
                for row in self._rows.values()
                if row.s3_key.startswith(prefix) and (after is None or row.s3_key >= after)
            ]
        return sorted(rows, key=lambda row: row.s3_key)[:limit]


def test_the_contract_fails_an_inclusive_after_within_a_few_pages() -> None:
    """The shipped contract test fails with a message naming ``after``; it does not hang."""
    repository = InclusiveAfter()
    with pytest.raises(AssertionError, match="after is exclusive"):
        KeysAndPurgingContract().test_list_by_key_walks_keys_in_order(repository)
    assert repository.calls <= 3


def test_reconcile_refuses_a_key_walk_that_does_not_move_on() -> None:
    """``reconcile`` raises DATABASE_ERROR naming list_by_key instead of looping forever."""
    repository = InclusiveAfter()
    for name in ("a", "b", "c"):
        repository.add(make_recording(s3_key=f"recordings/u/{name}.m4a"))
    service = RecordingService(
        InMemoryStorage("helppet-audio-recordings"),
        repository,
        RecordingSettings(),
        clock=FakeClock(),
    )
    with pytest.raises(RepositoryError) as caught:
        service.reconcile(page_size=2)
    assert caught.value.error_code == "DATABASE_ERROR"
    assert caught.value.details == {"operation": "list_by_key"}
    assert "after" in caught.value.message
    assert repository.calls == 2
