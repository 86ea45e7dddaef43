"""Cursor paging: next_cursor walks every recording once, newest first, bound to its filter."""

from __future__ import annotations

import uuid

import pytest

from helppet_recordings import ValidationError
from tests.support.cursors import cursor_moved_to
from tests.unit.conftest import Harness

USER = uuid.UUID("5f0c6c1e-0a7e-4b8e-9d5e-0c2b7b7f1a01")


def _initiate(h: Harness, count: int, *, every_seconds: float) -> list[uuid.UUID]:
    ids = []
    for _ in range(count):
        request = {"filename": "a.m4a", "content_type": "audio/mp4"}
        ids.append(h.service.initiate_upload(USER, request).recording_id)
        h.clock.advance(seconds=every_seconds)
    return ids


@pytest.mark.parametrize("every_seconds", [0, 1])
def test_cursors_walk_every_recording_once_newest_first(
    harness: Harness, every_seconds: float
) -> None:
    """Pages of 5 over 23 recordings (tied or distinct times) cover each once, in listing order."""
    _initiate(harness, 23, every_seconds=every_seconds)
    listed = harness.service.list_recordings(USER, limit=50)
    assert listed.next_cursor is None
    walked: list[uuid.UUID] = []
    page = harness.service.list_recordings(USER, limit=5)
    pages = 1
    while True:
        assert page.total == 23
        walked.extend(item.id for item in page.items)
        if page.next_cursor is None:
            break
        page = harness.service.list_recordings(USER, limit=5, cursor=page.next_cursor)
        pages += 1
    assert pages == 5
    assert walked == [item.id for item in listed.items]


def test_offset_pages_also_offer_a_cursor(harness: Harness) -> None:
    """An OFFSET page carries the cursor that continues after it."""
    _initiate(harness, 7, every_seconds=1)
    first = harness.service.list_recordings(USER, limit=3, offset=2)
    assert first.next_cursor is not None
    rest = harness.service.list_recordings(USER, limit=3, cursor=first.next_cursor)
    everything = harness.service.list_recordings(USER, limit=50).items
    assert [i.id for i in first.items + rest.items] == [i.id for i in everything[2:8]]


@pytest.mark.parametrize("cursor", ["", "not-a-cursor", "e30", "x" * 600])
def test_a_cursor_that_was_not_issued_is_a_validation_error(harness: Harness, cursor: str) -> None:
    """Garbage, an empty object or an oversized string: VALIDATION_ERROR naming cursor."""
    with pytest.raises(ValidationError) as info:
        harness.service.list_recordings(USER, cursor=cursor)
    assert info.value.details["errors"][0]["field"] == "cursor"


def test_a_cursor_is_bound_to_its_filter_and_to_offset_zero(harness: Harness) -> None:
    """A cursor from one listing is refused by a listing with other filters, or with an offset."""
    _initiate(harness, 4, every_seconds=1)
    cursor = harness.service.list_recordings(USER, limit=2).next_cursor
    assert cursor is not None
    with pytest.raises(ValidationError):
        harness.service.list_recordings(USER, limit=2, cursor=cursor, status="uploaded")
    with pytest.raises(ValidationError):
        harness.service.list_recordings(uuid.uuid4(), limit=2, cursor=cursor)
    with pytest.raises(ValidationError):
        harness.service.list_recordings(USER, limit=2, cursor=cursor, offset=1)


@pytest.mark.parametrize("created_at", ["0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00"])
def test_a_cursor_time_beyond_the_calendar_in_utc_is_a_validation_error(
    harness: Harness, created_at: str
) -> None:
    """An edited offset that puts the position outside datetime's range is refused, not a crash."""
    _initiate(harness, 2, every_seconds=1)
    cursor = harness.service.list_recordings(USER, limit=1).next_cursor
    assert cursor is not None
    with pytest.raises(ValidationError) as info:
        harness.service.list_recordings(USER, limit=1, cursor=cursor_moved_to(cursor, created_at))
    assert info.value.details["errors"][0]["field"] == "cursor"
