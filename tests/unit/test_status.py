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
}


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
def test_any_path_through_the_table_is_acyclic_and_ends_final(path: list[RecordingStatus]) -> None:
    """Following allowed moves never revisits a status; final statuses have no way out."""
    current = RecordingStatus.UPLOADING
    seen = {current}
    for target in path:
        if can_transition(current, target):
            assert target not in seen
            seen.add(target)
            current = target
    if not TRANSITIONS[current]:
        assert current in {RecordingStatus.TRANSCRIBED, RecordingStatus.FAILED}


def test_every_status_is_in_the_table() -> None:
    """The table covers every status and no status moves to itself."""
    assert set(TRANSITIONS) == set(RecordingStatus)
    assert all(status not in TRANSITIONS[status] for status in RecordingStatus)
