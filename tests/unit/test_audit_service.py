"""Auditing in the service: reads before they answer, changes right after they are stored."""

from __future__ import annotations

import datetime as dt
import logging
import uuid

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
from helppet_recordings.ports import RecordingRepository
from helppet_recordings.service.changes import AUDITED_EVENTS
from helppet_recordings.testing.clock import FakeClock
from helppet_recordings.testing.factories import BASE_TIME
from tests.support.faults import FaultyRepository

USER = uuid.UUID("7b0d8a52-51e5-4d3b-a0a1-2f7c9e1d4b21")
BODY = b"\x00\x00\x00\x18ftypM4A " + b"a" * 3000


class World:
    """A service over a repository that can be made to fail, with its storage and clock."""

    def __init__(self) -> None:
        self.clock = FakeClock()
        self.inner = InMemoryRepository()
        self.repository = FaultyRepository(self.inner)
        self.storage = InMemoryStorage("helppet-audio-recordings")
        self.events: list[RecordingEvent] = []
        self.service = RecordingService(
            self.storage,
            self.repository,
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


def test_a_failed_audit_of_a_stored_change_is_raised_and_logged(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """The deletion stands (it was stored first); the missing entry is an error, logged by id."""
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
