"""The sweeps and claims of :class:`SqlAlchemyRepository`: stale uploads and ready work."""

from __future__ import annotations

import contextlib
import datetime as dt
from typing import Any

import sqlalchemy as sa

from helppet_recordings.models import Recording
from helppet_recordings.repositories.sqlalchemy.engine import sqlite_begin_immediate
from helppet_recordings.repositories.sqlalchemy.errors import translate_errors
from helppet_recordings.repositories.sqlalchemy.mapping import (
    from_db_time,
    to_db_time,
    to_recording,
)
from helppet_recordings.repositories.sqlalchemy.statements import Statements

__all__ = ["ClaimQueries"]


class ClaimQueries:
    """Listing and claiming stale uploads and transcription work, for ``SqlAlchemyRepository``."""

    _engine: sa.Engine
    _lock: contextlib.AbstractContextManager[Any]
    _statements: Statements

    def list_stale_uploads(self, *, now: dt.datetime, limit: int) -> list[Recording]:
        """Return up to ``limit`` live uploading recordings whose deadline is before ``now``.

        Oldest deadline first (ties by id), served by the partial
        ``(status, upload_expires_at, id)`` index.
        """
        params = {"now": to_db_time(now), "limit": limit}
        with self._lock, translate_errors("list_stale_uploads"), self._engine.connect() as conn:
            rows = conn.execute(self._statements.stale, params).all()
        return [to_recording(row) for row in rows]

    def claim_stale_uploads(
        self, *, now: dt.datetime, limit: int, lease_until: dt.datetime
    ) -> list[Recording]:
        """Take up to ``limit`` stale uploads for this sweeper, pushing their deadline to the lease.

        One transaction: the stale rows are selected oldest deadline first
        and locked (PostgreSQL: ``FOR UPDATE SKIP LOCKED``, so concurrent
        sweepers take disjoint batches without waiting; SQLite: the database
        write lock, taken before reading), then their ``upload_expires_at``
        and ``lease_expires_at`` become ``lease_until``. Returns them as
        claimed, in that order.
        """
        statements = self._statements
        claimed = self._claim(
            "claim_stale_uploads",
            (statements.stale, statements.claim, statements.extend_deadline),
            now=now,
            limit=limit,
            lease_until=lease_until,
        )
        for recording in claimed:
            lease = from_db_time(to_db_time(lease_until))
            recording.upload_expires_at = recording.lease_expires_at = lease
        return claimed

    def claim_work(
        self, *, now: dt.datetime, limit: int, lease_until: dt.datetime
    ) -> list[Recording]:
        """Take up to ``limit`` recordings for a transcription worker, setting their lease.

        Locked as :meth:`claim_stale_uploads` locks (``FOR UPDATE SKIP LOCKED``
        on PostgreSQL), over the work-queue index, oldest lease first.
        """
        statements = self._statements
        claimed = self._claim(
            "claim_work",
            (statements.work, statements.claim_work, statements.lease),
            now=now,
            limit=limit,
            lease_until=lease_until,
        )
        for recording in claimed:
            recording.lease_expires_at = from_db_time(to_db_time(lease_until))
        return claimed

    def _claim(
        self,
        operation: str,
        statements: tuple[sa.Select[Any], sa.Select[Any], sa.Update],
        *,
        now: dt.datetime,
        limit: int,
        lease_until: dt.datetime,
    ) -> list[Recording]:
        """Select ready rows under a lock and write the lease on them, in one transaction."""
        select_on_sqlite, select_locked, write_lease = statements
        params = {"now": to_db_time(now), "limit": limit}
        with self._lock, translate_errors(operation), self._engine.begin() as conn:
            if conn.dialect.name == "sqlite":
                sqlite_begin_immediate(conn)
                rows = conn.execute(select_on_sqlite, params).all()
            else:
                rows = conn.execute(select_locked, params).all()
            claimed = [to_recording(row) for row in rows]
            if claimed:
                conn.execute(
                    write_lease,
                    {
                        "ids": [recording.id for recording in claimed],
                        "lease": to_db_time(lease_until),
                    },
                )
        return claimed
