"""The listings of :class:`SqlAlchemyRepository`: OFFSET pages and keyset pages, with totals."""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid
from typing import Any

import sqlalchemy as sa

from helppet_recordings.models import RecordingFilter, RecordingPage
from helppet_recordings.repositories.sqlalchemy.errors import translate_errors
from helppet_recordings.repositories.sqlalchemy.mapping import to_db_time, to_recording
from helppet_recordings.repositories.sqlalchemy.statements import Statements, filter_params

__all__ = ["ListingQueries"]


class ListingQueries:
    """Listing live recordings by filter, newest first, for ``SqlAlchemyRepository``."""

    _engine: sa.Engine
    _lock: contextlib.AbstractContextManager[Any]
    _statements: Statements

    def find(self, recording_filter: RecordingFilter, *, limit: int, offset: int) -> RecordingPage:
        """Return live recordings matching the filter, newest first, and their total count.

        Ordered by ``created_at DESC, id DESC`` (served by the owner index).
        The total, counted with the same filters, comes with the page in one
        statement (one round trip).
        """
        if limit < 0 or offset < 0:
            msg = "limit and offset must not be negative"
            raise ValueError(msg)
        params = filter_params(recording_filter)
        page_statement, count_statement = self._statements.finder(frozenset(params))
        with self._lock, translate_errors("find"), self._engine.connect() as connection:
            rows = connection.execute(
                page_statement, {**params, "limit": limit, "offset": offset}
            ).all()
            if rows:
                total = int(rows[0][-1])
            elif offset == 0 and limit > 0:
                total = 0
            else:
                total = int(connection.execute(count_statement, params).scalar_one())
        return RecordingPage(items=[to_recording(row[:-1]) for row in rows], total=total)

    def find_page(
        self,
        recording_filter: RecordingFilter,
        *,
        limit: int,
        after: tuple[dt.datetime, uuid.UUID] | None = None,
    ) -> RecordingPage:
        """Return up to ``limit`` live recordings matching the filter after ``after``, newest first.

        Keyset paging: ``after`` is the ``(created_at, id)`` of the last
        recording of the previous page (None for the first page), and only
        recordings strictly after it in ``created_at DESC, id DESC`` order
        come back. The position need not be a stored recording (one deleted
        since is fine). The page is read by seeking in the owner index, so
        its cost does not grow with its depth. ``total`` counts every
        recording matching the filter, as in :meth:`find`.
        """
        if limit < 0:
            msg = "limit must not be negative"
            raise ValueError(msg)
        params = filter_params(recording_filter)
        page_statement, count_statement = self._statements.keyset_finder(
            frozenset(params), after=after is not None
        )
        query: dict[str, Any] = {**params, "limit": limit}
        if after is not None:
            created_at, recording_id = after
            query["after_created_at"] = to_db_time(created_at)
            query["after_id"] = recording_id
        with self._lock, translate_errors("find_page"), self._engine.connect() as connection:
            rows = connection.execute(page_statement, query).all()
            if rows:
                total = int(rows[0][-1])
            elif after is None and limit > 0:
                total = 0
            else:
                total = int(connection.execute(count_statement, params).scalar_one())
        return RecordingPage(items=[to_recording(row[:-1]) for row in rows], total=total)
