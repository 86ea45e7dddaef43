"""Cursor paging through the service on every SQL database: the walk, ties, edited positions."""

from __future__ import annotations

import uuid

import pytest

from helppet_recordings import RecordingService, RecordingSettings, ValidationError
from helppet_recordings.repositories.sqlalchemy import SqlAlchemyRepository
from helppet_recordings.storage.memory import InMemoryStorage
from helppet_recordings.testing.clock import FakeClock
from tests.support.cursors import cursor_moved_to

USER = uuid.UUID("0b9e4a52-51c1-4d3e-a0a8-6f3f1c2b9d10")


def _service(repository: SqlAlchemyRepository, clock: FakeClock) -> RecordingService:
    return RecordingService(InMemoryStorage("b"), repository, RecordingSettings(), clock=clock)


def _initiate(service: RecordingService, clock: FakeClock, steps: list[float]) -> None:
    for seconds in steps:
        service.initiate_upload(USER, {"filename": "a.m4a", "content_type": "audio/mp4"})
        clock.advance(seconds=seconds)


def test_cursor_pages_cover_tied_and_microsecond_apart_recordings_once(
    sql_repository: SqlAlchemyRepository,
) -> None:
    """Pages of 3 over recordings sharing times, a microsecond apart or a second apart."""
    clock = FakeClock()
    service = _service(sql_repository, clock)
    _initiate(service, clock, [0, 0, 0, 0.000001, 0.000001, 0, 1, 0, 0, 0.5, 0, 0, 0, 0])
    everything = [item.id for item in service.list_recordings(USER, limit=50).items]
    walked: list[uuid.UUID] = []
    page = service.list_recordings(USER, limit=3)
    while True:
        walked.extend(item.id for item in page.items)
        if page.next_cursor is None:
            break
        page = service.list_recordings(USER, limit=3, cursor=page.next_cursor)
    assert len(everything) == 14
    assert walked == everything


def test_edited_cursor_positions_answer_a_page_or_a_validation_error(
    sql_repository: SqlAlchemyRepository,
) -> None:
    """A position at either end of the calendar pages as any other; one beyond it is refused."""
    clock = FakeClock()
    service = _service(sql_repository, clock)
    _initiate(service, clock, [1, 1, 1])
    cursor = service.list_recordings(USER, limit=1).next_cursor
    assert cursor is not None
    newest_first = [item.id for item in service.list_recordings(USER, limit=50).items]

    after_the_end = service.list_recordings(
        USER, limit=5, cursor=cursor_moved_to(cursor, "9999-12-31T23:59:59.999999+00:00")
    )
    assert [item.id for item in after_the_end.items] == newest_first
    before_the_start = service.list_recordings(
        USER, limit=5, cursor=cursor_moved_to(cursor, "0001-01-01T00:00:00+00:00")
    )
    assert before_the_start.items == []
    assert before_the_start.next_cursor is None
    for beyond in ("0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00"):
        with pytest.raises(ValidationError):
            service.list_recordings(USER, limit=5, cursor=cursor_moved_to(cursor, beyond))
