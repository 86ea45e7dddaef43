"""The worker transcribes only the verified object: changed audio is failed, never transcribed.

After completion verified a recording, bytes may still land at its key: a
replayed ticket on a server that ignores the pinned checksum (moto accepts
it, as the reproduction does: 204), or a direct write by anyone with access
to the storage. ``get_download_url`` refuses such audio (``object_changed``);
the worker must too, on every backend: ``InMemoryStorage``, ``LocalStorage``
and ``S3Storage`` (over moto, which answers ``requests``' calls in-process).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import attrs
import pytest
import requests

from helppet_recordings import (
    InMemoryRepository,
    InMemoryStorage,
    LocalStorage,
    RecordingService,
    RecordingSettings,
    RecordingStatus,
    S3Storage,
    UploadVerificationError,
)
from helppet_recordings.events import RecordingEvent
from helppet_recordings.schemas import InitiateUploadResponse, RecordingResponse
from helppet_recordings.storage.local import LocalUploadReceiver
from helppet_recordings.testing.clock import FakeClock
from helppet_recordings.transcription import (
    Transcript,
    TranscriptionInput,
    TranscriptionWorker,
    TransientTranscriptionError,
)
from tests.support.local_forms import SECRET, encode_form
from tests.support.moto_s3 import BUCKET, moto_bucket
from tests.support.replay import ORIGINAL, SAME_SIZE

GROWN = ORIGINAL + SAME_SIZE[44:]
"""A larger object whose first ``len(ORIGINAL)`` bytes are the verified ones."""

CHANGES = {"same_size": SAME_SIZE, "grown": GROWN}

Write = Callable[[InitiateUploadResponse, bytes], None]


@attrs.define
class World:
    """A service on one storage backend, and the two ways bytes reach its recording's key."""

    service: RecordingService
    clock: FakeClock
    events: list[RecordingEvent]
    upload: Write
    """The phone's upload of the ticket (a pinned one: ``content_sha256`` declared)."""
    overwrite: Write
    """Other bytes landing at ``s3_key`` after completion."""
    user: uuid.UUID = attrs.Factory(uuid.uuid4)

    def uploaded(self) -> InitiateUploadResponse:
        """Initiate declaring ORIGINAL's SHA-256, upload it, complete: a verified recording."""
        ticket = self.service.initiate_upload(
            self.user,
            {
                "filename": "visit.wav",
                "content_type": "audio/wav",
                "content_sha256": hashlib.sha256(ORIGINAL).hexdigest(),
            },
        )
        self.upload(ticket, ORIGINAL)
        done = self.service.complete_upload(
            self.user, ticket.recording_id, {"file_size_bytes": len(ORIGINAL)}
        )
        assert done.status is RecordingStatus.UPLOADED
        return ticket

    def recording(self, ticket: InitiateUploadResponse) -> RecordingResponse:
        """The recording as its owner sees it."""
        return self.service.get_recording(self.user, ticket.recording_id)


def _world(
    storage: InMemoryStorage | LocalStorage | S3Storage, upload: Write, overwrite: Write
) -> World:
    clock = FakeClock()
    events: list[RecordingEvent] = []
    service = RecordingService(
        storage,
        InMemoryRepository(),
        RecordingSettings(max_file_size=1_000_000),
        clock=clock,
        on_event=events.append,
    )
    return World(service, clock, events, upload, overwrite)


def _memory() -> Iterator[World]:
    storage = InMemoryStorage(BUCKET)

    def upload(ticket: InitiateUploadResponse, body: bytes) -> None:
        storage.receive_upload(ticket.upload_fields, body)

    def overwrite(ticket: InitiateUploadResponse, body: bytes) -> None:
        storage.put_object(ticket.s3_key, body, content_type="audio/wav")

    yield _world(storage, upload, overwrite)


def _local(root: Path) -> Iterator[World]:
    storage = LocalStorage(root, "http://127.0.0.1:9", SECRET)

    def post(fields: dict[str, str], body: bytes) -> None:
        content_type, encoded = encode_form(fields.items(), body)
        answer = LocalUploadReceiver(storage).receive(content_type, [encoded])
        assert answer.status == 204, answer.body

    def upload(ticket: InitiateUploadResponse, body: bytes) -> None:
        post(ticket.upload_fields, body)

    def overwrite(ticket: InitiateUploadResponse, body: bytes) -> None:
        # The pinned ticket refuses other bytes here (BadDigest): a direct write with a new one.
        fresh = storage.create_upload(
            key=ticket.s3_key, content_type="audio/wav", max_size=len(body), expires_in=60
        )
        post(dict(fresh.fields), body)

    yield _world(storage, upload, overwrite)


def _s3() -> Iterator[World]:
    with moto_bucket() as client:

        def post(ticket: InitiateUploadResponse, body: bytes) -> None:
            answer = requests.post(
                ticket.upload_url,
                data=ticket.upload_fields,
                files={"file": ("recording.wav", body, "audio/wav")},
                timeout=30,
            )
            assert answer.status_code == 204, answer.text

        # moto ignores the pinned checksum: the replayed ticket writes other bytes at s3_key.
        yield _world(S3Storage(BUCKET, client=client), post, post)  # S3Storage's defaults


@pytest.fixture(params=["memory", "local", "s3"])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    """A fresh service on one of the three storage backends."""
    if request.param == "memory":
        yield from _memory()
    elif request.param == "local":
        yield from _local(tmp_path / "store")
    else:
        yield from _s3()


@attrs.define
class Transcriber:
    """Reads the audio it is given (unless told not to), after an optional action; answers."""

    before: Callable[[], None] | None = None
    read_audio: bool = True
    error: Exception | None = None
    calls: int = 0
    bodies: list[bytes] = attrs.Factory(list)
    name: str = "fake"

    def transcribe(self, audio: TranscriptionInput) -> Transcript:
        """Run ``before``, read the whole stream, raise ``error`` or return a transcript."""
        self.calls += 1
        if self.before is not None:
            self.before()
        if self.read_audio:
            with audio.open() as stream:
                self.bodies.append(stream.read())
        if self.error is not None:
            raise self.error
        return Transcript("The dog is well.", 0.9, "en-US", service=self.name)


def assert_failed_as_changed(world: World, ticket: InitiateUploadResponse) -> RecordingResponse:
    """The recording is failed with object_changed, no transcript, the key in no reason."""
    recording = world.recording(ticket)
    assert recording.status is RecordingStatus.FAILED
    assert recording.processing_error is not None
    assert recording.processing_error.startswith("UPLOAD_VERIFICATION_FAILED (object_changed): ")
    assert ticket.s3_key not in recording.processing_error
    assert recording.transcript_text is None
    last = world.events[-1]
    assert (last.name, last.recording_id) == ("recording.failed", ticket.recording_id)
    assert last.attributes["previous_status"] == "processing"
    return recording


def test_unchanged_audio_is_transcribed_from_its_verified_bytes(world: World) -> None:
    """The pinned reads of the verified object succeed: transcribed, from exactly its bytes."""
    ticket = world.uploaded()
    transcriber = Transcriber()
    assert TranscriptionWorker(world.service, transcriber).run_once() == 1
    assert world.recording(ticket).status is RecordingStatus.TRANSCRIBED
    assert transcriber.bodies == [ORIGINAL]


@pytest.mark.parametrize("change", CHANGES)
def test_replaced_audio_is_failed_and_never_transcribed(world: World, change: str) -> None:
    """Other bytes at the key after completion: download refused, and the worker fails it."""
    ticket = world.uploaded()
    world.overwrite(ticket, CHANGES[change])
    with pytest.raises(UploadVerificationError) as refused:
        world.service.get_download_url(world.user, ticket.recording_id)
    assert refused.value.details["reason"] == "object_changed"

    transcriber = Transcriber()
    assert TranscriptionWorker(world.service, transcriber).run_once() == 1
    assert transcriber.calls == 0
    recording = assert_failed_as_changed(world, ticket)
    assert recording.audio is None  # not even measured: the first pinned read refused


def test_audio_replaced_while_the_transcriber_reads_it_is_never_read(world: World) -> None:
    """The object changes after measuring, as the transcriber opens it: its reads refuse."""
    ticket = world.uploaded()
    transcriber = Transcriber(before=lambda: world.overwrite(ticket, SAME_SIZE))
    assert TranscriptionWorker(world.service, transcriber).run_once() == 1
    assert transcriber.calls == 1
    assert transcriber.bodies == []
    recording = assert_failed_as_changed(world, ticket)
    assert recording.audio is not None  # measured from the verified bytes, before the change


def test_a_transcript_is_discarded_when_the_audio_changed_while_transcribing(
    world: World,
) -> None:
    """A transcriber that reads the object itself (as Transcribe does): its result is dropped."""
    ticket = world.uploaded()
    transcriber = Transcriber(before=lambda: world.overwrite(ticket, GROWN), read_audio=False)
    assert TranscriptionWorker(world.service, transcriber).run_once() == 1
    assert transcriber.calls == 1
    recording = assert_failed_as_changed(world, ticket)
    assert recording.processing_error is not None
    assert "the transcript is discarded" in recording.processing_error


def test_a_retry_hands_the_recording_over_only_while_the_audio_is_verified(
    world: World,
) -> None:
    """Measured on attempt 1, changed before attempt 2: the transcriber is not called again."""
    ticket = world.uploaded()
    transcriber = Transcriber(read_audio=False, error=TransientTranscriptionError("busy"))
    worker = TranscriptionWorker(world.service, transcriber, retry_base_seconds=1)
    assert worker.run_once() == 1
    waiting = world.recording(ticket)
    assert (waiting.status, waiting.audio is not None) == (RecordingStatus.UPLOADED, True)

    world.overwrite(ticket, SAME_SIZE)
    world.clock.advance(seconds=60)
    transcriber.error = None
    assert worker.run_once() == 1
    assert transcriber.calls == 1
    recording = assert_failed_as_changed(world, ticket)
    assert recording.processing_error is not None
    assert "it is not transcribed" in recording.processing_error
