"""The key lookups and purging of :class:`SqlAlchemyRepository`."""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid
from typing import Any

import sqlalchemy as sa

from helppet_recordings.audit import AuditEntry
from helppet_recordings.models import Recording
from helppet_recordings.repositories.sqlalchemy.errors import translate_errors
from helppet_recordings.repositories.sqlalchemy.mapping import to_db_time, to_recording, to_row
from helppet_recordings.repositories.sqlalchemy.reports import AuditStatements
from helppet_recordings.repositories.sqlalchemy.statements import Statements, prefix_successor

__all__ = ["KeyQueries"]


class KeyQueries:
    """Lookups by staging, idempotency and storage key, and purging (``SqlAlchemyRepository``)."""

    _engine: sa.Engine
    _lock: contextlib.AbstractContextManager[Any]
    _statements: Statements
    _audit_statements: AuditStatements

    def find_by_upload_key(self, key: str) -> Recording | None:
        """Return the recording whose ticket names staging ``key`` (its unique index), or None."""
        with self._lock, translate_errors("find_by_upload_key"), self._engine.connect() as c:
            row = c.execute(self._statements.by_upload_key, {"key": key}).first()
        return None if row is None else to_recording(row)

    def find_by_idempotency_key(self, user_id: uuid.UUID, key: str) -> Recording | None:
        """Return the user's recording created with this idempotency key (deleted ones too)."""
        params = {"user_id": user_id, "key": key}
        with self._lock, translate_errors("find_by_idempotency_key"), self._engine.connect() as c:
            row = c.execute(self._statements.by_idempotency_key, params).first()
        return None if row is None else to_recording(row)

    def list_by_key(self, *, prefix: str, after: str | None, limit: int) -> list[Recording]:
        """Return up to ``limit`` recordings whose key starts with ``prefix``, by ascending key.

        Only keys greater than ``after`` (when given). Keys compare in code
        point order on every backend (PostgreSQL: the column's ``C``
        collation), so this is a range scan of the unique key index.
        Deleted recordings are included.
        """
        upper = prefix_successor(prefix)
        from_prefix = after is None or after < prefix  # else only keys past ``after``
        low = prefix if from_prefix else after
        params: dict[str, Any] = {"low": low, "limit": limit}
        statement = self._statements.by_key(bounded=upper is not None, inclusive=from_prefix)
        if upper is not None:
            params["upper"] = upper
        with self._lock, translate_errors("list_by_key"), self._engine.connect() as connection:
            rows = connection.execute(statement, params).all()
        return [to_recording(row) for row in rows]

    def list_purgeable(self, *, deleted_before: dt.datetime, limit: int) -> list[Recording]:
        """Return up to ``limit`` soft-deleted, unpurged recordings deleted before then.

        Oldest deletion first (ties by id), served by the partial purge index.
        """
        params = {"before": to_db_time(deleted_before), "limit": limit}
        with self._lock, translate_errors("list_purgeable"), self._engine.connect() as connection:
            rows = connection.execute(self._statements.purgeable, params).all()
        return [to_recording(row) for row in rows]

    def mark_purged(self, recording: Recording, *, audit: AuditEntry | None = None) -> bool:
        """Write a scrubbed copy of a soft-deleted recording, in one conditional ``UPDATE``.

        Returns False, changing nothing, unless the stored recording is
        soft-deleted and not yet purged. With ``audit``, the entry's
        ``INSERT`` follows in the same transaction when the row changed.
        """
        params = {f"v_{name}": value for name, value in to_row(recording).items()}
        with self._lock, translate_errors("mark_purged"), self._engine.begin() as connection:
            if connection.execute(self._statements.purge, params).rowcount != 1:
                return False
            self._audit_statements.append(connection, audit)
            return True
