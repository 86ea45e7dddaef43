"""The audit trail over a recording's whole life, on memory, SQLite and PostgreSQL.

The SQL repository is watched with a SQLAlchemy event listener: the audit
table only ever sees ``INSERT`` and ``SELECT``.
"""

from __future__ import annotations

import datetime as dt
import re
import traceback
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from helppet_recordings import (
    InMemoryRepository,
    InMemoryStorage,
    RecordingNotFoundError,
    RecordingService,
    RecordingSettings,
)
from helppet_recordings.audit import AuditEntry
from helppet_recordings.errors import RepositoryError
from helppet_recordings.ports import RecordingRepository
from helppet_recordings.repositories.sqlalchemy import (
    AUDIT_TABLE_NAME,
    SqlAlchemyRepository,
    define_audit_table,
    define_recordings_table,
)
from helppet_recordings.testing.clock import FakeClock
from tests.integration.conftest import SQL_BACKENDS, database_url

USER = uuid.UUID("0d5e7c55-1f44-4a0e-9f53-6c1d2b9f7a11")
BODY = b"\x00\x00\x00\x18ftypM4A " + b"a" * 4000
TRANSCRIPT = "Bello's owner reports coughing at night."
_AUDIT_WRITE = re.compile(rf"^\s*(INSERT INTO|UPDATE|DELETE FROM)\s+{AUDIT_TABLE_NAME}\b", re.I)


@pytest.fixture(params=["memory", *SQL_BACKENDS])
def repository(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RecordingRepository]:
    """An empty repository of each kind: in memory, and migrated on every SQL backend."""
    if request.param == "memory":
        yield InMemoryRepository()
        return
    with SqlAlchemyRepository.from_url(database_url(request.param, request, tmp_path)) as sql:
        sql.create_schema()
        yield sql


def _watch_audit_statements(repository: RecordingRepository) -> Counter[str]:
    """Count each kind of statement the repository sends to the audit table (SQL only)."""
    seen: Counter[str] = Counter()
    if isinstance(repository, SqlAlchemyRepository):

        @sa.event.listens_for(repository.engine, "before_cursor_execute")
        def _count(*args: Any) -> None:
            statement: str = args[2]
            found = _AUDIT_WRITE.match(statement)
            if found:
                seen[found.group(1).upper()] += 1

    return seen


def _life_cycle(service: RecordingService, storage: InMemoryStorage, clock: FakeClock) -> uuid.UUID:
    """Drive one recording from initiate to purge, through every audited action."""
    ticket = service.initiate_upload(USER, {"filename": "Bello.m4a", "content_type": "audio/m4a"})
    rid = ticket.recording_id
    storage.put_object(
        ticket.upload_fields["key"],
        BODY,
        content_type="audio/m4a",
        server_side_encryption="AES256",
    )
    clock.advance(seconds=1)
    service.complete_upload(USER, rid, {"file_size_bytes": len(BODY)})
    service.get_recording(USER, rid)  # no transcript yet: nothing to audit
    clock.advance(seconds=1)
    service.get_download_url(USER, rid)
    clock.advance(seconds=1)
    service.start_processing(rid)
    service.mark_failed(rid, error="transcriber timed out")
    clock.advance(seconds=1)
    service.reprocess(rid)
    service.start_processing(rid)
    service.record_transcript(rid, text=TRANSCRIPT, confidence=0.9, language="en-US")
    listing = service.list_recordings(USER)
    assert [item.transcript_text for item in listing.items] == [None]
    assert listing.items[0].transcript_confidence == 0.9
    clock.advance(seconds=1)
    assert service.get_recording(USER, rid).transcript_text == TRANSCRIPT
    clock.advance(seconds=1)
    service.get_download_url(USER, rid)
    clock.advance(seconds=1)
    service.delete_recording(USER, rid)
    clock.advance(days=31)
    assert service.purge_deleted() == 1
    return rid


def test_every_audited_action_of_a_life_cycle_is_kept_through_the_purge(
    repository: RecordingRepository,
) -> None:
    """URL issues, the transcript read, reprocess, delete and purge: who, what, when, in order."""
    clock = FakeClock()
    storage = InMemoryStorage("helppet-audio-recordings")
    service = RecordingService(
        storage,
        repository,
        RecordingSettings(max_file_size=1_000_000, s3_presigned_url_expiration=600),
        clock=clock,
    )
    statements = _watch_audit_statements(repository)
    started = clock.now
    rid = _life_cycle(service, storage, clock)

    trail = service.audit_trail(rid)
    second = dt.timedelta(seconds=1)
    expected = [
        ("download_url.issued", USER, started + 2 * second, {"status": "uploaded"}),
        ("recording.reprocessed", None, started + 4 * second, {"status": "uploaded"}),
        ("transcript.read", USER, started + 5 * second, {"status": "transcribed"}),
        ("download_url.issued", USER, started + 6 * second, {"status": "transcribed"}),
        ("recording.deleted", USER, started + 7 * second, {"status": "transcribed"}),
        ("recording.purged", None, clock.now, {"status": "transcribed"}),
    ]
    assert [
        (entry.action, entry.actor_user_id, entry.at, entry.attributes["status"]) for entry in trail
    ] == [(action, actor, at, attrs["status"]) for action, actor, at, attrs in expected]
    assert all(entry.recording_id == rid for entry in trail)
    assert trail[0].attributes == {"status": "uploaded", "expires_in": 600}
    assert trail[1].attributes == {"status": "uploaded", "previous_attempts": 1}
    assert trail[2].attributes == {"status": "transcribed", "characters": len(TRANSCRIPT)}
    assert all(isinstance(entry, AuditEntry) for entry in trail)
    # The trail carries no personal content: no filename, no transcript.
    flat = repr([entry.attributes for entry in trail])
    assert "Bello" not in flat
    assert "coughing" not in flat
    # The row was scrubbed, the trail was not.
    purged = repository.get(rid)
    assert purged is not None
    assert (purged.transcript_text, purged.purged_at) == (None, clock.now)
    if isinstance(repository, SqlAlchemyRepository):
        # Append-only: six INSERTs, never an UPDATE or a DELETE of the audit table.
        assert statements == Counter({"INSERT INTO": 6})


def test_the_trail_outlives_the_recording_and_unknown_ids_are_not_found(
    repository: RecordingRepository,
) -> None:
    """A purged recording keeps its trail; an id that never existed is RECORDING_NOT_FOUND."""
    clock = FakeClock()
    storage = InMemoryStorage("helppet-audio-recordings")
    service = RecordingService(storage, repository, clock=clock)
    rid = _life_cycle(service, storage, clock)
    assert [entry.action for entry in service.audit_trail(str(rid))][-1] == "recording.purged"
    with pytest.raises(RecordingNotFoundError):
        service.audit_trail(uuid.uuid4())


def _download_entry() -> AuditEntry:
    return AuditEntry(
        recording_id=uuid.uuid4(),
        action="download_url.issued",
        actor_user_id=USER,
        at=dt.datetime(2026, 11, 24, 9, tzinfo=dt.UTC),
        attributes={"expires_in": 60},
    )


def test_an_embedding_host_passes_its_own_audit_table() -> None:
    """A host's audit table (its own name, in its own metadata) is the one written and read."""
    host = sa.MetaData()
    recordings = define_recordings_table(host, name="clinic_recordings")
    trail = define_audit_table(host, name="clinic_recording_audit")
    with SqlAlchemyRepository.from_url("sqlite://", table=recordings, audit_table=trail) as sql:
        host.create_all(sql.engine)
        assert sql.audit_table is trail
        entry = _download_entry()
        sql.record_audit(entry)
        assert sql.audit_trail(entry.recording_id) == [entry]
        with sql.engine.connect() as connection:
            rows = connection.execute(sa.select(sa.func.count()).select_from(trail)).scalar_one()
        assert rows == 1
        assert sa.inspect(sql.engine).has_table(AUDIT_TABLE_NAME) is False


def test_an_unreadable_audit_entry_quotes_nothing_stored() -> None:
    """Bad JSON in an entry's attributes is DATABASE_ERROR whose traceback quotes none of it."""
    with SqlAlchemyRepository.from_url("sqlite://") as sql:
        sql.create_schema()
        entry = _download_entry()
        sql.record_audit(entry)
        with sql.engine.begin() as connection:
            connection.execute(sql.audit_table.update().values(attributes='{"stored-secret"'))
        with pytest.raises(RepositoryError, match="audit entry could not be read") as caught:
            sql.audit_trail(entry.recording_id)
    assert caught.value.details["reason"] == "JSONDecodeError"
    assert (caught.value.__cause__, caught.value.__context__) == (None, None)
    assert "stored-secret" not in "".join(traceback.format_exception(caught.value))
