"""Rows map to recordings by column name, from one field list that the table must cover."""

from __future__ import annotations

import traceback

import attrs
import pytest
import sqlalchemy as sa

from helppet_recordings.errors import RepositoryError
from helppet_recordings.models import Recording
from helppet_recordings.repositories.sqlalchemy import (
    SqlAlchemyRepository,
    define_recordings_table,
    recordings,
)
from helppet_recordings.repositories.sqlalchemy.mapping import FIELDS, to_recording, to_row
from helppet_recordings.testing.factories import make_recording


def test_every_field_has_a_column_and_every_column_a_field() -> None:
    """The entity and the table name the same things: a new field cannot be forgotten."""
    fields = {field.name for field in attrs.fields(Recording)}
    assert set(FIELDS) == fields
    for table in (recordings, define_recordings_table(sa.MetaData(), name="audio")):
        assert set(table.c.keys()) == fields


def test_rows_are_keyed_by_column_name() -> None:
    """``to_row`` keys each value by its column; read back in FIELDS order, it round trips."""
    recording = make_recording(recording_metadata={"a": [1, 2]})
    row = to_row(recording)
    assert list(row) == list(FIELDS)
    assert row["s3_key"] == recording.s3_key
    assert row["status"] == "uploading"
    assert row["recording_metadata"] == '{"a":[1,2]}'
    assert to_recording([row[name] for name in FIELDS]) == recording


def test_a_table_missing_a_field_is_refused() -> None:
    """A host table without a column for some field fails at construction, naming it."""
    short = sa.Table(
        "recordings",
        sa.MetaData(),
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("filename", sa.String(255)),
    )
    engine = sa.create_engine("sqlite://")
    try:
        with pytest.raises(ValueError, match=r"no column for .*'purged_at'") as caught:
            SqlAlchemyRepository(engine, table=short)
        assert "'filename'" not in str(caught.value)
    finally:
        engine.dispose()


def test_null_in_a_required_field_is_a_repository_error(
    sql_repository: SqlAlchemyRepository,
) -> None:
    """A row another program wrote with a NULL created_at is DATABASE_ERROR, not a crash."""
    recording = make_recording()
    sql_repository.add(recording)
    with sql_repository.engine.begin() as connection:
        connection.execute(
            recordings.update().where(recordings.c.id == recording.id).values(created_at=None)
        )
    with pytest.raises(RepositoryError, match="could not be read") as caught:
        sql_repository.get(recording.id)
    assert caught.value.details["recording_id"] == str(recording.id)


def _formatted(error: BaseException) -> str:
    """The error as a host's logger would write it, with its traceback and chain."""
    return "".join(traceback.format_exception(error))


def test_unreadable_metadata_quotes_nothing_stored(sql_repository: SqlAlchemyRepository) -> None:
    """Bad JSON in recording_metadata names the column; the stored document is in no traceback.

    ``json.loads``'s error keeps the whole document (``JSONDecodeError.doc``),
    metadata a clinic may have put a name in.
    """
    recording = make_recording(recording_metadata={"owner": "Jane Doe"})
    sql_repository.add(recording)
    with sql_repository.engine.begin() as connection:
        connection.execute(
            recordings.update()
            .where(recordings.c.id == recording.id)
            .values(recording_metadata='{"owner": "Jane Doe"')
        )
    with pytest.raises(RepositoryError, match="could not be read") as caught:
        sql_repository.get(recording.id)
    assert caught.value.details["column"] == "recording_metadata"
    assert caught.value.details["reason"] == "JSONDecodeError"
    assert caught.value.__cause__ is None
    assert caught.value.__context__ is None
    assert "Jane Doe" not in _formatted(caught.value)


def test_a_value_the_entity_refuses_is_not_quoted() -> None:
    """A stored value a reader refuses (an unknown status) is named by column, not quoted."""
    row = to_row(make_recording())
    row["status"] = "jane-doe-status"
    with pytest.raises(RepositoryError) as caught:
        to_recording([row[name] for name in FIELDS])
    assert caught.value.details["column"] == "status"
    assert "jane-doe-status" not in _formatted(caught.value)


def test_a_null_names_its_column() -> None:
    """A NULL in a required column says which column and why."""
    row = to_row(make_recording())
    row["created_at"] = None
    with pytest.raises(RepositoryError) as caught:
        to_recording([row[name] for name in FIELDS])
    assert caught.value.details["column"] == "created_at"
    assert caught.value.details["reason"] == "null"
