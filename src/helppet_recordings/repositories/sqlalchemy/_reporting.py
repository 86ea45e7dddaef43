"""The audit trail and statistics of :class:`SqlAlchemyRepository`."""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid
from typing import Any

import sqlalchemy as sa

from helppet_recordings.audit import AuditEntry
from helppet_recordings.repositories.sqlalchemy.errors import translate_errors
from helppet_recordings.repositories.sqlalchemy.reports import (
    RAISE_WORK_MEM,
    AuditStatements,
    StatsStatements,
    to_audit_entry,
    to_repository_stats,
    window_params,
)
from helppet_recordings.stats import RepositoryStats

__all__ = ["AuditQueries"]


class AuditQueries:
    """The append-only audit trail and the statistics query, for ``SqlAlchemyRepository``."""

    _engine: sa.Engine
    _lock: contextlib.AbstractContextManager[Any]
    _audit_statements: AuditStatements
    _stats_statements: StatsStatements

    @property
    def audit_table(self) -> sa.Table:
        """The audit trail table the repository appends to."""
        return self._audit_statements.table

    def record_audit(self, entry: AuditEntry) -> None:
        """Append ``entry`` to the audit table in one ``INSERT``, committed before returning.

        The repository never updates or deletes an audit row. An entry id
        that is already stored raises ``DuplicateRecordingError``.
        """
        with self._lock, translate_errors("record_audit"), self._engine.begin() as connection:
            self._audit_statements.append(connection, entry)

    def audit_trail(self, recording_id: uuid.UUID) -> list[AuditEntry]:
        """Return the recording's audit entries, oldest first, ties in the order written."""
        params = {"recording_id": recording_id}
        with self._lock, translate_errors("audit_trail"), self._engine.connect() as connection:
            rows = connection.execute(self._audit_statements.trail, params).all()
        return [to_audit_entry(row) for row in rows]

    def stats(self, *, since: dt.datetime | None, until: dt.datetime | None) -> RepositoryStats:
        """Compute the statistics of the recordings created in ``[since, until)`` in one query.

        One aggregate ``SELECT`` returns one row: counts, extremes and means,
        and the percentiles (PostgreSQL: ``percentile_cont``, one sort per
        distribution, with ``work_mem`` raised to at least
        :data:`~.reports.STATS_WORK_MEM` for that transaction; SQLite: ranks
        picked with ``row_number()``, times to the millisecond). No recording
        is read into Python.
        """
        params = window_params(since, until)
        with self._lock, translate_errors("stats"), self._engine.connect() as connection:
            postgres = connection.dialect.name == "postgresql"
            statement = self._stats_statements.statement(
                postgres=postgres, since=since is not None, until=until is not None
            )
            if postgres:  # the sorts in memory; set_config(..., true) ends with the transaction
                connection.execute(RAISE_WORK_MEM)
            row = connection.execute(statement, params).mappings().one()
        return to_repository_stats(row)
