"""The repository contract's listings: ``find`` and keyset paging with ``find_page``.

Part of :class:`~helppet_recordings.testing.repository_contract.RepositoryContract`,
which supplies the ``repository`` fixture.
"""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from helppet_recordings.models import RecordingFilter
from helppet_recordings.ports import RecordingRepository
from helppet_recordings.status import RecordingStatus
from helppet_recordings.testing.factories import BASE_TIME, make_recording


def _walk(
    repository: RecordingRepository, recording_filter: RecordingFilter, *, limit: int
) -> tuple[list[list[uuid.UUID]], set[int]]:
    """Page through a listing with ``find_page``; return each page's ids and the totals seen.

    Fails, rather than looping for ever, if the pages do not end.
    """
    pages: list[list[uuid.UUID]] = []
    totals: set[int] = set()
    after: tuple[dt.datetime, uuid.UUID] | None = None
    for _ in range(100):
        page = repository.find_page(recording_filter, limit=limit, after=after)
        totals.add(page.total)
        if not page.items:
            return pages, totals
        assert len(page.items) <= limit
        pages.append([r.id for r in page.items])
        after = (page.items[-1].created_at, page.items[-1].id)
    pytest.fail(f"find_page never reached the end: {pages[-2:]}")


class ListingContract:
    """Offset listing with ``find`` and keyset paging with ``find_page``."""

    def test_list_filters_orders_and_pages(self, repository: RecordingRepository) -> None:
        """Listing returns one owner's live recordings, newest first, with a filtered total."""
        user, other = uuid.uuid4(), uuid.uuid4()
        appointment, visit = uuid.uuid4(), uuid.uuid4()
        mine = [
            make_recording(
                recorded_by_user_id=user,
                created_at=BASE_TIME + dt.timedelta(seconds=i),
                appointment_id=appointment if i % 2 == 0 else None,
                visit_id=visit if i % 3 == 0 else None,
                status=RecordingStatus.UPLOADED if i < 4 else RecordingStatus.UPLOADING,
            )
            for i in range(10)
        ]
        for recording in mine:
            repository.add(recording)
        repository.add(make_recording(recorded_by_user_id=other))
        gone = make_recording(
            recorded_by_user_id=user, created_at=BASE_TIME + dt.timedelta(hours=1)
        )
        repository.add(gone)
        repository.save(
            gone.copy(is_deleted=True, deleted_at=BASE_TIME), expected_status=gone.status
        )

        page = repository.find(RecordingFilter(user_id=user), limit=3, offset=0)
        assert page.total == 10
        assert [r.id for r in page.items] == [r.id for r in mine[::-1][:3]]
        page = repository.find(RecordingFilter(user_id=user), limit=3, offset=9)
        assert [r.id for r in page.items] == [mine[0].id]
        page = repository.find(RecordingFilter(user_id=user), limit=5, offset=20)
        assert (page.items, page.total) == ([], 10)

        by_appointment = repository.find(
            RecordingFilter(user_id=user, appointment_id=appointment), limit=50, offset=0
        )
        assert {r.id for r in by_appointment.items} == {r.id for r in mine[::2]}
        assert by_appointment.total == 5
        by_visit = repository.find(
            RecordingFilter(user_id=user, visit_id=visit), limit=50, offset=0
        )
        assert {r.id for r in by_visit.items} == {mine[i].id for i in (0, 3, 6, 9)}
        by_status = repository.find(
            RecordingFilter(user_id=user, status=RecordingStatus.UPLOADED), limit=2, offset=0
        )
        assert by_status.total == 4
        assert [r.id for r in by_status.items] == [mine[3].id, mine[2].id]
        combined = RecordingFilter(
            user_id=user, appointment_id=appointment, status=RecordingStatus.UPLOADED
        )
        assert repository.find(combined, limit=50, offset=0).total == 2

    def test_list_breaks_created_at_ties_stably(self, repository: RecordingRepository) -> None:
        """Recordings created in the same instant page without repeats or gaps."""
        user = uuid.uuid4()
        for _ in range(7):
            repository.add(make_recording(recorded_by_user_id=user))
        seen = [
            r.id
            for offset in range(0, 7, 2)
            for r in repository.find(RecordingFilter(user_id=user), limit=2, offset=offset).items
        ]
        assert len(seen) == len(set(seen)) == 7

    def test_keyset_pages_cover_every_row_once_under_ties(
        self, repository: RecordingRepository
    ) -> None:
        """Many recordings in few instants: keyset pages list each once, in ``find``'s order."""
        user = uuid.uuid4()
        instants = [BASE_TIME + dt.timedelta(seconds=s, microseconds=7) for s in (0, 1, 1, 3)]
        for i in range(23):
            repository.add(make_recording(recorded_by_user_id=user, created_at=instants[i % 4]))
        repository.add(make_recording(created_at=instants[1]))  # another owner's
        gone = make_recording(recorded_by_user_id=user, created_at=instants[1])
        repository.add(gone)
        repository.save(
            gone.copy(is_deleted=True, deleted_at=BASE_TIME), expected_status=gone.status
        )
        everything = repository.find(RecordingFilter(user_id=user), limit=100, offset=0)
        expected = [r.id for r in everything.items]
        assert len(expected) == 23
        for limit in (1, 5, 23, 50):
            pages, totals = _walk(repository, RecordingFilter(user_id=user), limit=limit)
            assert [rid for page in pages for rid in page] == expected
            assert all(len(page) == limit for page in pages[:-1])
            assert totals == {23}
        first = repository.find_page(RecordingFilter(user_id=user), limit=4, after=None)
        assert [r.id for r in first.items] == expected[:4]
        assert first.items == everything.items[:4]  # whole recordings, every field
        assert repository.find_page(RecordingFilter(user_id=user), limit=0, after=None).total == 23

    def test_keyset_pages_honour_every_filter(self, repository: RecordingRepository) -> None:
        """Each filter, alone and combined, pages through exactly what ``find`` lists."""
        user = uuid.uuid4()
        appointment, visit = uuid.uuid4(), uuid.uuid4()
        for i in range(12):
            repository.add(
                make_recording(
                    recorded_by_user_id=user,
                    created_at=BASE_TIME + dt.timedelta(seconds=i // 3),
                    appointment_id=appointment if i % 2 == 0 else None,
                    visit_id=visit if i % 3 == 0 else None,
                    status=RecordingStatus.UPLOADED if i < 5 else RecordingStatus.UPLOADING,
                )
            )
        filters = [
            RecordingFilter(user_id=user),
            RecordingFilter(user_id=user, appointment_id=appointment),
            RecordingFilter(user_id=user, visit_id=visit),
            RecordingFilter(user_id=user, status=RecordingStatus.UPLOADED),
            RecordingFilter(user_id=user, appointment_id=appointment, visit_id=visit),
            RecordingFilter(
                user_id=user, appointment_id=appointment, status=RecordingStatus.UPLOADED
            ),
            RecordingFilter(user_id=uuid.uuid4()),
        ]
        for recording_filter in filters:
            listed = repository.find(recording_filter, limit=100, offset=0)
            pages, totals = _walk(repository, recording_filter, limit=2)
            assert [rid for page in pages for rid in page] == [r.id for r in listed.items]
            assert totals == {listed.total}
        sizes = [repository.find(f, limit=100, offset=0).total for f in filters]
        assert sizes == [12, 6, 4, 5, 2, 3, 0]

    def test_keyset_position_need_not_be_a_listed_row(
        self, repository: RecordingRepository
    ) -> None:
        """A page after a recording deleted since, or after any instant, continues from there."""
        user = uuid.uuid4()
        rows = [
            make_recording(recorded_by_user_id=user, created_at=BASE_TIME + dt.timedelta(seconds=i))
            for i in range(6)
        ]
        for recording in rows:
            repository.add(recording)
        newest_first = sorted(rows, key=lambda r: r.created_at, reverse=True)
        cursor = newest_first[2]
        repository.save(
            cursor.copy(is_deleted=True, deleted_at=BASE_TIME), expected_status=cursor.status
        )
        page = repository.find_page(
            RecordingFilter(user_id=user), limit=10, after=(cursor.created_at, cursor.id)
        )
        assert [r.id for r in page.items] == [r.id for r in newest_first[3:]]
        assert page.total == 5
        india = dt.timezone(dt.timedelta(hours=5, minutes=30))
        between = (BASE_TIME + dt.timedelta(seconds=1, milliseconds=500)).astimezone(india)
        page = repository.find_page(
            RecordingFilter(user_id=user), limit=10, after=(between, uuid.UUID(int=0))
        )
        assert [r.id for r in page.items] == [rows[1].id, rows[0].id]
        past_the_end = (BASE_TIME - dt.timedelta(days=1), uuid.UUID(int=0))
        page = repository.find_page(RecordingFilter(user_id=user), limit=10, after=past_the_end)
        assert (page.items, page.total) == ([], 5)

    def test_keyset_paging_refuses_bad_arguments(self, repository: RecordingRepository) -> None:
        """A negative limit or a naive position is a programming error (ValueError)."""
        listing = RecordingFilter(user_id=uuid.uuid4())
        with pytest.raises(ValueError, match="negative"):
            repository.find_page(listing, limit=-1, after=None)
        with pytest.raises(ValueError, match="timezone-aware"):
            repository.find_page(
                listing, limit=5, after=(BASE_TIME.replace(tzinfo=None), uuid.uuid4())
            )
