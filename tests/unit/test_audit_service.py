"""Auditing in the service: reads before they answer, changes together with their entries."""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from helppet_recordings import (
    InMemoryRepository,
    InMemoryStorage,
    RecordingService,
    RecordingSettings,
    RepositoryUnavailableError,
)
from helppet_recordings.audit import AUDIT_ACTIONS, AuditEntry
from helppet_recordings.events import RecordingEvent
from helppet_recordings.models import Recording
from helppet_recordings.ports import RecordingRepository
from helppet_recordings.service.changes import AUDITED_EVENTS
from helppet_recordings.status import RecordingStatus
from helppet_recordings.testing.clock import FakeClock
from helppet_recordings.testing.factories import BASE_TIME
from tests.support.faults import FaultyRepository
from tests.support.port_only import PortOnlyRepository

USER = uuid.UUID("7b0d8a52-51e5-4d3b-a0a1-2f7c9e1d4b21")
BODY = b"\x00\x00\x00\x18ftypM4A " + b"a" * 3000


class World:
    """A service over a repository that can be made to fail, with its storage and clock."""

    def __init__(
        self,
        wrapper: type[FaultyRepository] = FaultyRepository,
        *,
        older: type[PortOnlyRepository] | None = None,
    ) -> None:
        # With older, the service gets a repository written before save and mark_purged
        # took audit=, over self.repository; without it, self.repository itself.
        self.clock = FakeClock()
        self.inner = InMemoryRepository()
        self.repository = wrapper(self.inner)
        self.storage = InMemoryStorage("helppet-audio-recordings")
        self.events: list[RecordingEvent] = []
        self.service = RecordingService(
            self.storage,
            self.repository if older is None else older(self.repository),
            RecordingSettings(max_file_size=1_000_000),
            clock=self.clock,
            on_event=self.events.append,
        )

    def uploaded(self) -> uuid.UUID:
        """Return the id of a new recording whose upload was verified."""
        ticket = self.service.initiate_upload(
            USER, {"filename": "Rex.m4a", "content_type": "audio/m4a"}
        )
        self.storage.put_object(
            ticket.upload_fields["key"],
            BODY,
            content_type="audio/m4a",
            server_side_encryption="AES256",
        )
        self.service.complete_upload(USER, ticket.recording_id, {"file_size_bytes": len(BODY)})
        return ticket.recording_id

    def transcribed(self, text: str = "Rex is limping.") -> uuid.UUID:
        """Return the id of a new, transcribed recording."""
        rid = self.uploaded()
        self.service.start_processing(rid)
        self.service.record_transcript(
            rid, text=text, confidence=0.8, language="en-US", service="whisper"
        )
        return rid


@pytest.fixture
def world() -> World:
    """A fresh service on in-memory backends."""
    return World()


def test_no_audit_entry_no_download_url(world: World) -> None:
    """When the audit write fails, get_download_url raises and hands out no URL."""
    rid = world.uploaded()
    world.repository.failing = {"record_audit"}
    with pytest.raises(RepositoryUnavailableError):
        world.service.get_download_url(USER, rid)
    assert [e.name for e in world.events].count("download_url.issued") == 0
    world.repository.failing = set()
    issued = world.service.get_download_url(USER, rid)
    assert issued.download_url
    assert [entry.action for entry in world.service.audit_trail(rid)] == ["download_url.issued"]


def test_no_audit_entry_no_transcript(world: World) -> None:
    """A transcript is returned only after its read was audited; other reads are not audited."""
    rid = world.transcribed()
    plain = world.uploaded()
    world.repository.failing = {"record_audit"}
    with pytest.raises(RepositoryUnavailableError):
        world.service.get_recording(USER, rid)
    assert world.service.get_recording(USER, plain).transcript_text is None
    world.repository.failing = set()
    assert world.service.get_recording(USER, rid).transcript_text == "Rex is limping."
    assert world.repository.calls["record_audit"] == 2  # the refused read and the audited one
    assert [entry.action for entry in world.service.audit_trail(rid)] == ["transcript.read"]
    assert world.service.audit_trail(plain) == []  # it exists; nothing of it was audited


class RefusingAuditedWrites(FaultyRepository):
    """A repository whose audited writes fail, as one whose audit insert fails rolls back."""

    def save(self, recording: Recording, **arguments: Any) -> bool:
        """Refuse a write that carries an audit entry; forward any other."""
        if arguments.get("audit") is not None:
            raise RepositoryUnavailableError("the audit table is unavailable")
        return bool(self._inner.save(recording, **arguments))

    def mark_purged(self, recording: Recording, **arguments: Any) -> bool:
        """Refuse a purge that carries an audit entry; forward any other."""
        if arguments.get("audit") is not None:
            raise RepositoryUnavailableError("the audit table is unavailable")
        return bool(self._inner.mark_purged(recording, **arguments))


class ForwardsEverything(PortOnlyRepository):
    """A tracing wrapper around such a repository: ``*args, **kwargs`` forwarded as they come."""

    def save(self, *args: Any, **kwargs: Any) -> bool:
        """Forward to the older repository's save."""
        return PortOnlyRepository.save(self, *args, **kwargs)

    def mark_purged(self, *args: Any, **kwargs: Any) -> bool:
        """Forward to the older repository's mark_purged."""
        return PortOnlyRepository.mark_purged(self, *args, **kwargs)


class ToleratesOptions(PortOnlyRepository):
    """An older repository whose writes take (and ignore) any other option."""

    def save(self, recording: Recording, **options: Any) -> bool:
        """Write with the options it knows; drop the rest."""
        known = {"expected_status", "previous", "expected_lease"}
        return PortOnlyRepository.save(
            self, recording, **{k: v for k, v in options.items() if k in known}
        )

    def mark_purged(self, recording: Recording, **options: Any) -> bool:
        """Purge; ignore every option."""
        return PortOnlyRepository.mark_purged(self, recording)


def test_audited_changes_are_stored_with_their_entries(world: World) -> None:
    """Deletion, reprocessing and purging each write the change and its entry in one call."""
    rid = world.uploaded()
    world.service.mark_failed(rid, error="no speech")
    world.service.reprocess(rid)
    world.service.delete_recording(USER, rid)
    world.clock.advance(days=60)
    assert world.service.purge_deleted() == 1
    assert world.repository.calls["record_audit"] == 0
    assert [entry.action for entry in world.service.audit_trail(rid)] == [
        "recording.reprocessed",
        "recording.deleted",
        "recording.purged",
    ]


@pytest.mark.parametrize("operation", ["delete", "reprocess", "purge"])
def test_a_change_whose_entry_cannot_be_stored_is_not_stored(operation: str) -> None:
    """The error reaches the caller; the recording is as it was, with no entry and no event."""
    world = World(RefusingAuditedWrites)
    rid = world.uploaded()
    if operation == "reprocess":
        world.service.mark_failed(rid, error="no speech")
    if operation == "purge":
        uploaded = world.inner.get(rid)
        assert uploaded is not None
        deleted = uploaded.copy(is_deleted=True, deleted_at=BASE_TIME)  # not through the service
        assert world.inner.save(deleted, expected_status=RecordingStatus.UPLOADED)
        world.clock.advance(days=60)
    before = world.inner.get(rid)
    published = len(world.events)
    operations: dict[str, Callable[[], object]] = {
        "delete": lambda: world.service.delete_recording(USER, rid),
        "reprocess": lambda: world.service.reprocess(rid),
        "purge": world.service.purge_deleted,
    }
    run = operations[operation]
    with pytest.raises(RepositoryUnavailableError):
        run()
    assert world.inner.get(rid) == before
    assert world.inner.audit_trail(rid) == []
    assert len(world.events) == published


@pytest.mark.parametrize(
    "shape",
    [PortOnlyRepository, ForwardsEverything, ToleratesOptions],
    ids=["WithoutAuditParameter", "ForwardsEverything", "ToleratesOptions"],
)
def test_a_repository_without_the_audit_parameter_gets_the_entry_after_the_change(
    shape: type[PortOnlyRepository],
) -> None:
    """An older repository keeps working: the service appends the entry once the change is in.

    ``**kwargs`` does not count as taking ``audit=``: a wrapper forwarding it to an older
    repository would fail, and one that drops unknown options would lose the entry.
    """
    world = World(older=shape)
    rid = world.uploaded()
    world.service.delete_recording(USER, rid)
    world.clock.advance(days=60)
    assert world.service.purge_deleted() == 1
    assert world.repository.calls["record_audit"] == 2
    trail = [entry.action for entry in world.inner.audit_trail(rid)]
    assert trail == ["recording.deleted", "recording.purged"]


def test_with_an_older_repository_a_failed_audit_is_raised_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """There the deletion stands (it was stored first); the missing entry is logged by id."""
    world = World(older=PortOnlyRepository)
    rid = world.uploaded()
    world.repository.failing = {"record_audit"}
    with (
        caplog.at_level(logging.ERROR, logger="helppet_recordings.audit"),
        pytest.raises(RepositoryUnavailableError),
    ):
        world.service.delete_recording(USER, rid)
    stored = world.inner.get(rid)
    assert stored is not None
    assert stored.is_deleted
    assert any(
        str(rid) in record.getMessage() and "recording.deleted" in record.getMessage()
        for record in caplog.records
    )


def test_listings_and_repeated_completions_carry_no_transcript_text(world: World) -> None:
    """Listings show the transcript's confidence and language but never its text, unaudited."""
    rid = world.transcribed("Milo ate a sock.")
    listing = world.service.list_recordings(USER)
    (item,) = listing.items
    assert item.transcript_text is None
    assert (item.transcript_confidence, item.transcript_language) == (0.8, "en-US")
    assert (item.status.value, item.transcription_service) == ("transcribed", "whisper")
    again = world.service.complete_upload(USER, rid, {"file_size_bytes": len(BODY)})
    assert again.status.value == "transcribed"
    assert again.transcript_text is None
    assert world.inner.audit_trail(rid) == []
    assert world.service.get_recording(USER, rid).transcript_text == "Milo ate a sock."


def test_events_and_audit_agree_on_audited_changes(world: World) -> None:
    """Each audited event name maps to an audit action, and the events are still published."""
    assert set(AUDITED_EVENTS.values()) <= AUDIT_ACTIONS
    rid = world.uploaded()
    world.service.mark_failed(rid, error="no speech")
    world.service.reprocess(rid)
    world.service.delete_recording(USER, rid)
    names = [event.name for event in world.events]
    assert {"recording.reprocessed", "recording.deleted"} <= set(names)
    trail = world.service.audit_trail(rid)
    assert [(entry.action, entry.actor_user_id) for entry in trail] == [
        ("recording.reprocessed", None),
        ("recording.deleted", USER),
    ]


def test_the_port_offers_no_way_to_change_the_trail() -> None:
    """The repository port's only audit methods append and read."""
    audit_methods = sorted(name for name in dir(RecordingRepository) if "audit" in name)
    assert audit_methods == ["audit_trail", "record_audit"]


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"action": "recording.viewed"}, "must be in"),
        ({"at": BASE_TIME.replace(tzinfo=None)}, "timezone-aware"),
        (
            {"attributes": {"filename": "Bello the beagle, 12 Oak Lane, Springfield.m4a" * 2}},
            "code",
        ),
        ({"attributes": {"nested": {"a": 1}}}, "code, a number or a flag"),
        ({"attributes": {"ratio": float("nan")}}, "finite"),
        ({"attributes": {str(n): n for n in range(17)}}, "at most"),
    ],
)
def test_audit_entries_hold_codes_only(fields: dict[str, object], problem: str) -> None:
    """An entry refuses unknown actions, naive times, free text and nested values."""
    values: dict[str, object] = {
        "recording_id": uuid.uuid4(),
        "action": "transcript.read",
        "actor_user_id": USER,
        "at": BASE_TIME,
        **fields,
    }
    with pytest.raises((ValueError, TypeError), match=problem):
        AuditEntry(**values)  # type: ignore[arg-type]


def test_audit_entries_are_kept_in_utc() -> None:
    """An entry's time is converted to UTC, the same instant."""
    tokyo = dt.timezone(dt.timedelta(hours=9))
    entry = AuditEntry(
        recording_id=uuid.uuid4(),
        action="download_url.issued",
        actor_user_id=None,
        at=BASE_TIME.astimezone(tokyo),
    )
    assert entry.at == BASE_TIME
    assert entry.at.tzinfo is dt.UTC


class LoggingSubclass(InMemoryRepository):
    """A host's subclass of a shipped repository that overrides ``save`` with the old signature."""

    def save(  # type: ignore[override]  # as written before the parent took audit=
        self,
        recording: Recording,
        *,
        expected_status: RecordingStatus,
        previous: Recording | None = None,
        expected_lease: dt.datetime | None = None,
    ) -> bool:
        """Save as the parent does (a log line would go here)."""
        return super().save(
            recording,
            expected_status=expected_status,
            previous=previous,
            expected_lease=expected_lease,
        )


def _initiated_then_deleted(repository: InMemoryRepository) -> uuid.UUID:
    """Initiate an upload through a service over ``repository``, delete it; return its id."""
    service = RecordingService(
        InMemoryStorage("helppet-audio-recordings"),
        repository,
        RecordingSettings(max_file_size=1_000_000),
        clock=FakeClock(),
    )
    ticket = service.initiate_upload(USER, {"filename": "Rex.m4a", "content_type": "audio/m4a"})
    service.delete_recording(USER, ticket.recording_id)
    return ticket.recording_id


def test_a_subclass_overriding_save_without_audit_keeps_working() -> None:
    """The parent's declaration does not hold for an override that cannot take ``audit=``."""
    repository = LoggingSubclass()
    rid = _initiated_then_deleted(repository)
    assert [entry.action for entry in repository.audit_trail(rid)] == ["recording.deleted"]


def test_a_false_declaration_opts_out() -> None:
    """``supports_atomic_audit = False``: entries are appended after the change, never passed."""

    class OptedOut(InMemoryRepository):
        supports_atomic_audit = False
        appended = 0

        def record_audit(self, entry: AuditEntry) -> None:
            OptedOut.appended += 1
            super().record_audit(entry)

    repository = OptedOut()
    rid = _initiated_then_deleted(repository)
    assert OptedOut.appended == 1
    assert [e.action for e in repository.audit_trail(rid)] == ["recording.deleted"]


@pytest.mark.parametrize("operation", ["delete", "reprocess", "purge"])
def test_with_an_older_repository_a_failed_audit_still_publishes_the_event(
    operation: str,
) -> None:
    """The change was stored, so its event is published before the audit failure is raised."""
    world = World(older=PortOnlyRepository)
    rid = world.uploaded()
    if operation == "reprocess":
        world.service.mark_failed(rid, error="no speech")
    if operation == "purge":
        world.service.delete_recording(USER, rid)
        world.clock.advance(days=60)
    operations: dict[str, tuple[str, Callable[[], object]]] = {
        "delete": ("recording.deleted", lambda: world.service.delete_recording(USER, rid)),
        "reprocess": ("recording.reprocessed", lambda: world.service.reprocess(rid)),
        "purge": ("recording.purged", world.service.purge_deleted),
    }
    name, run = operations[operation]
    world.repository.failing = {"record_audit"}
    with pytest.raises(RepositoryUnavailableError):
        run()
    assert [event.name for event in world.events].count(name) == 1
    assert AUDITED_EVENTS[name] not in [entry.action for entry in world.inner.audit_trail(rid)]


def test_a_purge_whose_audit_fails_stops_there_with_the_event_published(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The first recording stays purged and published; no more audio goes unaudited.

    Run again once the audit table takes writes, the purge finishes the rest.
    """
    world = World(older=PortOnlyRepository)
    rids = [world.uploaded() for _ in range(3)]
    for rid in rids:
        world.service.delete_recording(USER, rid)
    world.clock.advance(days=60)
    world.repository.failing = {"record_audit"}
    with (
        caplog.at_level(logging.ERROR, logger="helppet_recordings"),
        pytest.raises(RepositoryUnavailableError),
    ):
        world.service.purge_deleted(batch_size=2)
    stored = {rid: world.inner.get(rid) for rid in rids}
    purged = [rid for rid, row in stored.items() if row is not None and row.purged_at is not None]
    assert len(purged) == 1
    assert [e.recording_id for e in world.events if e.name == "recording.purged"] == purged
    assert any(str(purged[0]) in record.getMessage() for record in caplog.records)
    for rid in set(rids) - set(purged):
        row = stored[rid]
        assert row is not None
        assert world.storage.head(row.s3_key) is not None  # its audio is still there
    world.repository.failing = set()
    assert world.service.purge_deleted() == 2
    for rid in set(rids) - set(purged):
        actions = [entry.action for entry in world.inner.audit_trail(rid)]
        assert actions == ["recording.deleted", "recording.purged"]
