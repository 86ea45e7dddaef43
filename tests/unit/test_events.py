"""Events: one per stored change, none for a failed operation, nothing personal, listeners safe."""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import gc
import logging
import uuid
from typing import Any

import pytest

from helppet_recordings import (
    AsyncRecordingService,
    InMemoryRepository,
    InMemoryStorage,
    InvalidStatusTransitionError,
    RecordingEvent,
    RecordingNotFoundError,
    RecordingService,
    RecordingSettings,
    UploadNotFoundError,
)
from helppet_recordings.events import EVENT_NAMES
from helppet_recordings.models import AudioFacts
from helppet_recordings.testing.clock import FakeClock

USER = uuid.UUID("5f0c6c1e-0a7e-4b8e-9d5e-0c2b7b7f1a01")
BODY = b"\x00\x00\x00\x18ftypM4A " + b"a" * 5000
SECRET_FILENAME = "Bello Smith visit.m4a"
SECRET_METADATA = "owner-phone-5550142"
SECRET_TRANSCRIPT = "Bello has a cough since Tuesday"
PERSONAL = ("Bello", "Smith", SECRET_METADATA, "cough", "Tuesday")
FACTS = AudioFacts(
    format="wav", codec="pcm_s16le", duration_seconds=1.5, sample_rate=16000, channels=1
)


class Recorder:
    """A listener that keeps every event."""

    def __init__(self) -> None:
        self.events: list[RecordingEvent] = []

    def __call__(self, event: RecordingEvent) -> None:
        self.events.append(event)

    def names(self) -> list[str]:
        """The names received so far, in order."""
        return [e.name for e in self.events]


@pytest.fixture
def recorder() -> Recorder:
    """The recorder under test."""
    return Recorder()


@pytest.fixture
def clock() -> FakeClock:
    """The clock under test."""
    return FakeClock()


@pytest.fixture
def storage() -> InMemoryStorage:
    """The storage under test."""
    return InMemoryStorage()


@pytest.fixture
def service(recorder: Recorder, clock: FakeClock, storage: InMemoryStorage) -> RecordingService:
    """The service under test."""
    settings = RecordingSettings(max_file_size=1_000_000, s3_presigned_url_expiration=600)
    return RecordingService(storage, InMemoryRepository(), settings, clock=clock, on_event=recorder)


def _initiate(service: RecordingService, **extra: str) -> uuid.UUID:
    request = {"filename": SECRET_FILENAME, "content_type": "audio/mp4", **extra}
    return service.initiate_upload(USER, request).recording_id


def _upload(service: RecordingService, storage: InMemoryStorage, rid: uuid.UUID) -> None:
    row = service.repository.get(rid)
    assert row is not None and row.upload_key is not None
    storage.put_object(row.upload_key, BODY, content_type="audio/mp4")


def _complete(service: RecordingService, rid: uuid.UUID) -> None:
    service.complete_upload(
        USER,
        rid,
        {"file_size_bytes": len(BODY), "recording_metadata": {"phone": SECRET_METADATA}},
    )


def test_a_full_life_cycle_emits_each_event_once_in_order(
    service: RecordingService, storage: InMemoryStorage, recorder: Recorder, clock: FakeClock
) -> None:
    """Initiate to purge: one event per stored change, with the recording, caller and time."""
    rid = _initiate(service)
    _upload(service, storage, rid)
    clock.advance(seconds=5)
    _complete(service, rid)
    service.get_download_url(USER, rid)
    service.start_processing(rid)
    service.record_transcript(rid, text=SECRET_TRANSCRIPT, confidence=0.9, language="en-US")
    service.delete_recording(USER, rid)
    clock.advance(days=60)
    assert service.purge_deleted() == 1
    assert recorder.names() == [
        "recording.initiated",
        "upload.completed",
        "download_url.issued",
        "processing.started",
        "transcript.recorded",
        "recording.deleted",
        "recording.purged",
    ]
    assert {e.recording_id for e in recorder.events} == {rid}
    users = [e.user_id for e in recorder.events]
    assert users == [USER, USER, USER, None, None, USER, None]
    completed = recorder.events[1]
    assert completed.at == clock.now - dt.timedelta(days=60)
    assert completed.attributes["size_bytes"] == len(BODY)
    assert completed.attributes["status"] == "uploaded"
    assert recorder.events[-1].attributes["status"] == "transcribed"


def test_refusals_expiry_failure_and_the_sweeper_emit_their_events(
    service: RecordingService, storage: InMemoryStorage, recorder: Recorder, clock: FakeClock
) -> None:
    """upload.rejected, upload.expired, recording.failed and a sweeper promotion, once each."""
    refused = _initiate(service)
    with pytest.raises(UploadNotFoundError):
        _complete(service, refused)
    assert recorder.names()[-1] == "upload.rejected"
    assert recorder.events[-1].attributes["error_code"] == "UPLOAD_NOT_FOUND"

    promoted = _initiate(service)
    _upload(service, storage, promoted)
    failing = _initiate(service)
    _upload(service, storage, failing)
    _complete(service, failing)
    service.mark_failed(failing, error="transcriber crashed")
    assert recorder.names()[-1] == "recording.failed"
    before_sweep = len(recorder.events)

    clock.advance(hours=2)
    assert service.expire_stale_uploads() == 1
    swept = recorder.events[before_sweep:]
    assert {e.recording_id: e.name for e in swept} == {
        refused: "upload.expired",
        promoted: "upload.completed",
    }
    assert len(swept) == 2
    assert [e.attributes["by"] for e in swept if e.recording_id == promoted] == ["sweeper"]


def test_every_event_name_is_reachable(
    service: RecordingService, storage: InMemoryStorage, recorder: Recorder, clock: FakeClock
) -> None:
    """Between the two flows above, every name the contract lists is published."""
    test_a_full_life_cycle_emits_each_event_once_in_order(service, storage, recorder, clock)
    test_refusals_expiry_failure_and_the_sweeper_emit_their_events(
        service, storage, recorder, clock
    )
    worked = _initiate(service)
    _upload(service, storage, worked)
    _complete(service, worked)
    claimed = next(r for r in service.claim_for_processing(limit=10) if r.id == worked)
    service.begin_processing(claimed)
    assert claimed.lease_expires_at is not None
    service.record_audio(worked, FACTS, claim=claimed.lease_expires_at)
    service.defer_processing(
        worked, error="503", retry_in_seconds=1, claim=claimed.lease_expires_at
    )
    service.mark_failed(worked, error="gave up")
    service.reprocess(worked)
    assert recorder.names()[-5:] == [
        "processing.started",
        "audio.inspected",
        "processing.deferred",
        "recording.failed",
        "recording.reprocessed",
    ]
    assert set(recorder.names()) == EVENT_NAMES


def test_failed_and_repeated_operations_emit_nothing(
    service: RecordingService, storage: InMemoryStorage, recorder: Recorder
) -> None:
    """An operation that raises, or repeats an earlier one, publishes no event."""
    rid = _initiate(service, idempotency_key="k1")
    _initiate(service, idempotency_key="k1")  # the same recording, a fresh ticket
    _upload(service, storage, rid)
    _complete(service, rid)
    _complete(service, rid)  # idempotent
    recorder.events.clear()
    with pytest.raises(InvalidStatusTransitionError):
        service.record_transcript(rid, text="too early")
    with pytest.raises(InvalidStatusTransitionError):
        service.renew_upload(USER, rid)
    with pytest.raises(RecordingNotFoundError):
        service.delete_recording(uuid.uuid4(), rid)
    with pytest.raises(RecordingNotFoundError):
        service.get_download_url(USER, uuid.uuid4())
    assert recorder.events == []


def test_a_raising_listener_never_breaks_or_undoes_the_operation(
    storage: InMemoryStorage, caplog: pytest.LogCaptureFixture
) -> None:
    """The change is stored and answered; the listener's error is logged."""

    def explode(event: RecordingEvent) -> None:
        msg = "listener bug"
        raise RuntimeError(msg)

    repository = InMemoryRepository()
    service = RecordingService(storage, repository, RecordingSettings(), on_event=explode)
    with caplog.at_level(logging.ERROR, logger="helppet_recordings"):
        rid = _initiate(service)
        service.delete_recording(USER, rid)
    stored = repository.get(rid)
    assert stored is not None and stored.is_deleted
    failures = [r for r in caplog.records if r.name == "helppet_recordings.events"]
    assert len(failures) == 2
    assert all(r.exc_info is not None for r in failures)


def test_no_personal_content_in_any_event_or_log_record(
    service: RecordingService,
    storage: InMemoryStorage,
    recorder: Recorder,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A whole life cycle at DEBUG: no filename, metadata or transcript in events or logs."""
    with caplog.at_level(logging.DEBUG):
        test_every_event_name_is_reachable(service, storage, recorder, clock)
        service.reconcile()
    assert caplog.records, "the package logs its events at DEBUG"
    texts = [repr(e) for e in recorder.events] + [r.getMessage() for r in caplog.records]
    for text in texts:
        for secret in PERSONAL:
            assert secret not in text, (secret, text)


async def _async_handler(event: RecordingEvent) -> None:
    """An asyncio host's handler."""


class _AsyncCallable:
    async def __call__(self, event: RecordingEvent) -> None:
        """An object whose call is a coroutine."""


@pytest.mark.parametrize(
    ("listener", "named"),
    [
        (_async_handler, "_async_handler"),
        (_AsyncCallable(), "_AsyncCallable"),
        (functools.partial(_async_handler), "_async_handler"),
    ],
    ids=["async def", "async __call__", "partial"],
)
def test_a_coroutine_function_listener_is_refused(listener: object, named: str) -> None:
    """It would never run: the service refuses it up front and says how to subscribe instead."""
    with pytest.raises(TypeError, match="coroutine function") as caught:
        RecordingService(
            InMemoryStorage(),
            InMemoryRepository(),
            on_event=listener,  # type: ignore[arg-type]
        )
    assert named in str(caught.value)
    assert "run_coroutine_threadsafe" in str(caught.value)


def test_an_awaitable_a_listener_returns_is_closed_and_logged(
    storage: InMemoryStorage, caplog: pytest.LogCaptureFixture
) -> None:
    """A sync wrapper that returns a coroutine: closed unrun, an error naming the listener only."""
    started: list[RecordingEvent] = []

    async def handle(event: RecordingEvent) -> None:
        started.append(event)

    def wrapper(event: RecordingEvent) -> Any:
        return handle(event)

    service = RecordingService(storage, InMemoryRepository(), on_event=wrapper)
    with caplog.at_level(logging.ERROR, logger="helppet_recordings.events"):
        rid = _initiate(service)
        gc.collect()  # an unclosed coroutine would warn "never awaited" here (an error)
    (record,) = caplog.records
    message = record.getMessage()
    assert "test_an_awaitable_a_listener_returns_is_closed_and_logged.<locals>.wrapper" in message
    assert str(rid) not in message
    assert "recording.initiated" not in message
    assert started == []


def test_a_task_a_listener_returns_is_left_to_run(storage: InMemoryStorage) -> None:
    """A task is scheduled already: it runs on its loop, and nothing is logged or closed."""
    handled: list[str] = []

    async def handle(event: RecordingEvent) -> None:
        handled.append(event.name)

    def schedule(event: RecordingEvent) -> Any:
        return asyncio.get_running_loop().create_task(handle(event))

    service = RecordingService(storage, InMemoryRepository(), on_event=schedule)

    async def main() -> None:
        _initiate(service)  # on the loop's thread: the listener may create a task
        await asyncio.sleep(0)

    asyncio.run(main())
    assert handled == ["recording.initiated"]


def test_an_asyncio_host_subscribes_as_documented(storage: InMemoryStorage) -> None:
    """AsyncRecordingService calls listeners in worker threads; the handler runs on the loop."""
    handled: list[tuple[str, bool]] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        done = asyncio.Event()

        async def handle(event: RecordingEvent) -> None:
            handled.append((event.name, asyncio.get_running_loop() is loop))
            done.set()

        def on_event(event: RecordingEvent) -> None:
            asyncio.run_coroutine_threadsafe(handle(event), loop)

        service = AsyncRecordingService(
            RecordingService(storage, InMemoryRepository(), on_event=on_event)
        )
        await service.initiate_upload(USER, {"filename": "a.m4a", "content_type": "audio/mp4"})
        await asyncio.wait_for(done.wait(), timeout=10)

    asyncio.run(main())
    assert handled == [("recording.initiated", True)]
