"""AsyncRecordingService: the same operations awaited, concurrently, without blocking the loop."""

from __future__ import annotations

import asyncio
import inspect
import threading
import uuid

import pytest

from helppet_recordings import (
    AsyncRecordingService,
    InMemoryRepository,
    InMemoryStorage,
    Recording,
    RecordingNotFoundError,
    RecordingService,
    RecordingSettings,
)
from tests.support.uploads import upload_key

USER = uuid.UUID("5f0c6c1e-0a7e-4b8e-9d5e-0c2b7b7f1a01")
BODY = b"\x00\x00\x00\x18ftypM4A " + b"a" * 500


class GatedRepository(InMemoryRepository):
    """An in-memory repository whose ``add`` waits for a gate another party opens."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()

    def add(self, recording: Recording) -> None:
        """Block until the gate opens (fail loudly if it never does)."""
        if not self.gate.wait(timeout=10):
            msg = "the gate never opened: the event loop was blocked"
            raise RuntimeError(msg)
        super().add(recording)


def _service(repository: InMemoryRepository) -> AsyncRecordingService:
    settings = RecordingSettings(max_file_size=1_000_000)
    return AsyncRecordingService(RecordingService(InMemoryStorage(), repository, settings))


def test_a_blocking_backend_does_not_block_the_event_loop() -> None:
    """While a call waits on its backend, the loop runs the code that releases it."""
    repository = GatedRepository()
    service = _service(repository)

    async def scenario() -> uuid.UUID:
        pending = asyncio.ensure_future(
            service.initiate_upload(USER, {"filename": "a.m4a", "content_type": "audio/mp4"})
        )
        await asyncio.sleep(0.05)
        assert not pending.done()
        repository.gate.set()  # only reachable if the loop is free
        return (await pending).recording_id

    rid = asyncio.run(scenario())
    assert repository.get(rid) is not None


def test_concurrent_calls_settle_like_sequential_ones() -> None:
    """Fifty concurrent initiates, a racing idempotent initiate, completes and a listing."""
    repository = InMemoryRepository()
    service = _service(repository)
    storage = service.sync.storage
    assert isinstance(storage, InMemoryStorage)

    async def scenario() -> None:
        request = {"filename": "a.m4a", "content_type": "audio/mp4"}
        tickets = await asyncio.gather(*(service.initiate_upload(USER, request) for _ in range(50)))
        assert len({t.recording_id for t in tickets}) == 50
        same = await asyncio.gather(
            *(
                service.initiate_upload(USER, {**request, "idempotency_key": "once"})
                for _ in range(20)
            )
        )
        assert len({t.recording_id for t in same}) == 1
        for ticket in tickets:
            storage.put_object(upload_key(ticket), BODY, content_type="audio/mp4")
        done = await asyncio.gather(
            *(
                service.complete_upload(USER, t.recording_id, {"file_size_bytes": len(BODY)})
                for t in tickets
            )
        )
        assert {r.status.value for r in done} == {"uploaded"}
        listing = await service.list_recordings(USER, status="uploaded", limit=100)
        assert listing.total == 50
        await service.delete_recording(USER, tickets[0].recording_id)
        with pytest.raises(RecordingNotFoundError):
            await service.get_recording(USER, tickets[0].recording_id)

    asyncio.run(scenario())


def test_every_service_operation_has_an_async_twin() -> None:
    """Each public method of RecordingService, its mixins' too, has a twin with its signature."""
    operations = [
        name
        for name, member in inspect.getmembers(RecordingService, inspect.isfunction)
        if not name.startswith("_")
    ]
    assert {"initiate_upload", "claim_for_processing", "stats"} <= set(operations)  # both halves
    for name in operations:
        twin = getattr(AsyncRecordingService, name)
        assert inspect.iscoroutinefunction(twin), name
        assert inspect.signature(twin) == inspect.signature(getattr(RecordingService, name)), name
        assert twin.__doc__.startswith(f"Await :meth:`RecordingService.{name}`"), name


def test_the_backends_are_those_of_the_service() -> None:
    """settings, storage, repository and metrics are the synchronous service's."""
    service = _service(InMemoryRepository())
    sync = service.sync
    assert (service.settings, service.storage, service.repository, service.metrics) == (
        sync.settings,
        sync.storage,
        sync.repository,
        sync.metrics,
    )


def test_a_cancelled_call_still_runs_its_operation_to_its_end() -> None:
    """Cancelling the awaiting task leaves the operation whole: it finishes and is stored."""
    repository = GatedRepository()
    service = _service(repository)

    async def scenario() -> None:
        pending = asyncio.ensure_future(
            service.initiate_upload(USER, {"filename": "a.m4a", "content_type": "audio/mp4"})
        )
        await asyncio.sleep(0.05)
        pending.cancel()
        with pytest.raises(asyncio.CancelledError):
            await pending
        repository.gate.set()
        for _ in range(200):  # the thread goes on after the task is gone
            if (await service.list_recordings(USER)).total:
                return
            await asyncio.sleep(0.01)
        pytest.fail("the cancelled operation never finished")

    asyncio.run(scenario())
