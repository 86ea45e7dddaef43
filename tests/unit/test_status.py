"""The transition table, as properties."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from helppet_recordings import InvalidStatusTransitionError, RecordingStatus
from helppet_recordings.status import TRANSITIONS, can_transition, check_transition

statuses = st.sampled_from(list(RecordingStatus))
EXPECTED = {
    ("uploading", "uploaded"),
    ("uploaded", "processing"),
    ("processing", "transcribed"),
    ("uploading", "failed"),
    ("uploaded", "failed"),
    ("processing", "failed"),
    ("processing", "uploaded"),  # a transient transcription error: wait for a retry
    ("failed", "uploaded"),  # reprocess a recording whose audio was verified
}
RETURNS = {("processing", "uploaded"), ("failed", "uploaded")}


@given(statuses, statuses)
def test_exactly_the_designed_moves_are_allowed(
    current: RecordingStatus, target: RecordingStatus
) -> None:
    """A move is allowed iff the design's status flow draws it; others raise with details."""
    allowed = (current.value, target.value) in EXPECTED
    assert can_transition(current, target) is allowed
    if allowed:
        check_transition(current, target)
    else:
        with pytest.raises(InvalidStatusTransitionError) as info:
            check_transition(current, target)
        assert info.value.details["current_status"] == current.value
        assert info.value.details["requested_status"] == target.value


@given(st.lists(statuses, max_size=12))
def test_without_the_retry_moves_every_path_is_acyclic(path: list[RecordingStatus]) -> None:
    """Every cycle goes through a retry move; without them, paths never revisit a status."""
    current = RecordingStatus.UPLOADING
    seen = {current}
    for target in path:
        if can_transition(current, target) and (current.value, target.value) not in RETURNS:
            assert target not in seen
            seen.add(target)
            current = target
    if not TRANSITIONS[current]:
        assert current is RecordingStatus.TRANSCRIBED


def test_uploading_is_never_reached_again() -> None:
    """No move leads back to uploading: a verified upload stays verified."""
    assert all(RecordingStatus.UPLOADING not in targets for targets in TRANSITIONS.values())


def test_every_status_is_in_the_table() -> None:
    """The table covers every status and no status moves to itself."""
    assert set(TRANSITIONS) == set(RecordingStatus)
    assert all(status not in TRANSITIONS[status] for status in RecordingStatus)
