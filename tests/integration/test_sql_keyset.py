"""Keyset pages in SQL: the position is a seek in the owner index on both databases."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import sqlalchemy as sa

from helppet_recordings.models import RecordingFilter
from helppet_recordings.repositories.sqlalchemy import SqlAlchemyRepository
from helppet_recordings.testing.factories import BASE_TIME, make_recording


def _plans(repository: SqlAlchemyRepository, call: Any) -> list[str]:
    """Run ``call``, then return the plan of every statement it sent (sequential scans off)."""
    engine = repository.engine
    captured: list[tuple[str, Any]] = []

    def capture(*args: Any) -> None:
        captured.append((args[2], args[3]))  # statement, parameters

    sa.event.listen(engine, "before_cursor_execute", capture)
    try:
        call()
    finally:
        sa.event.remove(engine, "before_cursor_execute", capture)
    postgres = engine.dialect.name == "postgresql"
    plans = []
    with engine.connect() as connection:
        cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        if postgres:
            cursor.execute("SET enable_seqscan = off")
        explain = "EXPLAIN " if postgres else "EXPLAIN QUERY PLAN "
        for statement, parameters in captured:
            cursor.execute(explain + statement, parameters)
            plans.append("\n".join(str(row) for row in cursor.fetchall()))
        cursor.close()
        connection.rollback()
    return plans


def test_keyset_page_seeks_in_the_owner_index(shared_engine_url: str) -> None:
    """The (created_at, id) position is an index condition, not a filter over skipped rows."""
    with SqlAlchemyRepository.from_url(shared_engine_url) as repository:
        repository.create_schema()
        user = uuid.uuid4()
        rows = [
            make_recording(recorded_by_user_id=user, created_at=BASE_TIME + dt.timedelta(i))
            for i in range(4)
        ]
        for recording in rows:
            repository.add(recording)
        after = (rows[2].created_at, rows[2].id)
        (plan,) = _plans(
            repository,
            lambda: repository.find_page(RecordingFilter(user_id=user), limit=2, after=after),
        )
    assert plan.count("ix_recordings_owner_created") == 2  # the page and its total
    assert "Seq Scan" not in plan
    assert "SCAN recordings" not in plan
    if "Index Cond" in plan:  # PostgreSQL
        seek = next(line for line in plan.splitlines() if "ROW(created_at, id) <" in line)
        assert "Index Cond" in seek
    else:  # SQLite
        assert "(created_at,id)<(?,?)" in plan
