"""Many threads race the service's status changes on the same recordings, on a SQL database.

The service runs over ``SqlAlchemyRepository`` (SQLite file, PostgreSQL) and
``S3Storage`` on moto. Sixteen threads complete, process, transcribe, fail and
delete the same few recordings at once. Afterwards every recording is in one
valid status that agrees with the calls that succeeded, no successful write
was lost, and every failure was a deliberate ``RecordingError``.

moto's in-process S3 is not thread-safe (a copy racing a delete of its
source, or a GET's body read as the object is deleted, reads a closed file and
raises ``ValueError``, where S3 answers ``NoSuchKey`` or streams the body it
started), so the storage client's calls, bodies included, go one at a time;
the threads still interleave between them, and the races under test are the
database's.
"""

from __future__ import annotations

import collections
import io
import random
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import attrs
import pytest
from botocore.response import StreamingBody

from helppet_recordings import RecordingService, RecordingSettings, S3Storage
from helppet_recordings.errors import RecordingError
from helppet_recordings.models import Recording
from helppet_recordings.repositories.sqlalchemy import SqlAlchemyRepository
from helppet_recordings.schemas import RecordingResponse
from helppet_recordings.status import RecordingStatus
from tests.support.moto_s3 import BUCKET, moto_bucket

THREADS = 16
OPERATIONS_PER_THREAD = 30
RECORDINGS = 6
EXPECTED_CODES = {"INVALID_STATUS_TRANSITION", "RECORDING_NOT_FOUND", "UPLOAD_NOT_FOUND"}
OPERATIONS = ("complete", "start", "transcript", "fail", "delete")
WEIGHTS = (4, 3, 2, 1, 0.2)


@attrs.frozen
class Outcome:
    """One call a worker made: what, on which recording, and how it ended."""

    operation: str
    recording_id: uuid.UUID
    argument: str
    response: RecordingResponse | None = None
    error_code: str | None = None
    unexpected: BaseException | None = None


@attrs.define
class Scene:
    """The service, its repository, the owner and the uploaded sizes of the recordings."""

    service: RecordingService
    repository: SqlAlchemyRepository
    user_id: uuid.UUID
    sizes: dict[uuid.UUID, int | None]


@pytest.fixture
def scene(shared_engine_url: str) -> Iterator[Scene]:
    """Recordings initiated through the service; all but one have their object in S3."""
    with moto_bucket() as client, SqlAlchemyRepository.from_url(shared_engine_url) as repository:
        repository.create_schema()
        _one_call_at_a_time(client)
        service = RecordingService(
            S3Storage(BUCKET, client=client), repository, RecordingSettings(max_file_size=10_000)
        )
        user_id = uuid.uuid4()
        sizes: dict[uuid.UUID, int | None] = {}
        for i in range(RECORDINGS):
            ticket = service.initiate_upload(
                user_id, {"filename": f"visit-{i}.m4a", "content_type": "audio/mp4"}
            )
            recording = repository.get(ticket.recording_id)
            assert recording is not None
            assert recording.mime_type is not None
            if i == RECORDINGS - 1:
                sizes[recording.id] = None  # never uploaded: completing it must fail
                continue
            client.put_object(
                Bucket=BUCKET,
                Key=recording.upload_key or recording.s3_key,
                Body=(b"\x00\x00\x00\x18ftypM4A " + b"a" * (100 + i))[: 100 + i],
                ContentType=recording.mime_type,
                ServerSideEncryption="AES256",
            )
            sizes[recording.id] = 100 + i
        yield Scene(service, repository, user_id, sizes)


def _one_call_at_a_time(client: Any) -> None:
    """Serialize the client's S3 calls (see the module docstring: moto is not thread-safe)."""
    lock = threading.Lock()
    make_api_call = client._make_api_call

    def serialized(operation: str, params: dict[str, Any]) -> Any:
        with lock:
            response = make_api_call(operation, params)
            body = response.get("Body") if isinstance(response, dict) else None
            if body is not None:
                # A GET's body is read later, outside the call: read it under the lock too, or
                # a racing delete closes the moto file it streams from.
                data = body.read()
                response["Body"] = StreamingBody(io.BytesIO(data), len(data))
            return response

    client._make_api_call = serialized


def _run_workers(scene: Scene) -> list[Outcome]:
    """Let THREADS workers loose on the recordings at once; return every call's outcome."""
    service, user = scene.service, scene.user_id
    ids = list(scene.sizes)
    barrier = threading.Barrier(THREADS)

    def call(operation: str, rid: uuid.UUID, argument: str) -> RecordingResponse | None:
        actions: dict[str, Callable[[], RecordingResponse | None]] = {
            "complete": lambda: service.complete_upload(
                user,
                rid,
                {"file_size_bytes": scene.sizes[rid] or 1, "recording_metadata": {"by": argument}},
            ),
            "start": lambda: service.start_processing(rid),
            "transcript": lambda: service.record_transcript(rid, text=argument, language="en"),
            "fail": lambda: service.mark_failed(rid, error=argument),
            "delete": lambda: service.delete_recording(user, rid),
        }
        return actions[operation]()

    def worker(number: int) -> list[Outcome]:
        rng = random.Random(number)
        outcomes = []
        barrier.wait()
        for step in range(OPERATIONS_PER_THREAD):
            operation = rng.choices(OPERATIONS, WEIGHTS)[0]
            rid = rng.choice(ids)
            argument = f"worker {number} step {step}"
            try:
                response = call(operation, rid, argument)
            except RecordingError as exc:
                outcomes.append(Outcome(operation, rid, argument, error_code=exc.error_code))
            except Exception as exc:  # noqa: BLE001 - anything else is a failure, asserted below
                outcomes.append(Outcome(operation, rid, argument, unexpected=exc))
            else:
                outcomes.append(Outcome(operation, rid, argument, response=response))
        return outcomes

    with ThreadPoolExecutor(THREADS) as pool:
        return [outcome for outcomes in pool.map(worker, range(THREADS)) for outcome in outcomes]


def _check_recording(final: Recording, size: int | None, outcomes: list[Outcome]) -> None:
    """Assert the stored recording agrees with every call on it that succeeded."""
    won: dict[str, list[Outcome]] = collections.defaultdict(list)
    for outcome in outcomes:
        if outcome.error_code is None:
            won[outcome.operation].append(outcome)
    # Each one-way step happened at most once; transcribed and failed exclude each other.
    for operation in ("start", "transcript", "fail", "delete"):
        assert len(won[operation]) <= 1, (operation, won[operation])
    assert not (won["transcript"] and won["fail"])

    assert final.is_deleted == bool(won["delete"])
    expected = {
        RecordingStatus.UPLOADING: not won["complete"] and not won["fail"],
        RecordingStatus.UPLOADED: bool(won["complete"]) and not (won["start"] or won["fail"]),
        RecordingStatus.PROCESSING: bool(won["start"]) and not (won["transcript"] or won["fail"]),
        RecordingStatus.TRANSCRIBED: bool(won["transcript"]) and bool(won["start"]),
        RecordingStatus.FAILED: bool(won["fail"]),
    }
    assert expected[final.status], (final.status, {k: len(v) for k, v in won.items()})
    if won["start"]:
        assert won["complete"], "processing started before any completion succeeded"

    # No lost update: what each winner wrote is what is stored.
    if won["fail"]:
        assert final.processing_error == won["fail"][0].argument
    if won["transcript"]:
        assert final.transcript_text == won["transcript"][0].argument
    if won["start"]:
        started = won["start"][0].response
        assert started is not None
        assert final.processing_started_at == started.processing_started_at
    completions = [o.response for o in won["complete"] if o.response is not None]
    if completions:
        assert size is not None
        assert final.file_size_bytes == size
        assert {str(r.recording_metadata) for r in completions} == {str(final.recording_metadata)}
    responses = [o.response for group in won.values() for o in group if o.response is not None]
    if responses and not final.is_deleted:
        assert final.updated_at == max(r.updated_at for r in responses)


def test_racing_status_changes_leave_consistent_recordings(scene: Scene) -> None:
    """16 threads racing on 6 recordings: valid final states, no lost update, only known errors."""
    outcomes = _run_workers(scene)
    assert len(outcomes) == THREADS * OPERATIONS_PER_THREAD
    assert [o.unexpected for o in outcomes if o.unexpected is not None] == []
    codes = collections.Counter(o.error_code for o in outcomes if o.error_code is not None)
    assert set(codes) <= EXPECTED_CODES, codes
    assert sum(1 for o in outcomes if o.error_code is None) > RECORDINGS
    assert codes["INVALID_STATUS_TRANSITION"] > 0, "the workers never collided"

    by_recording: dict[uuid.UUID, list[Outcome]] = collections.defaultdict(list)
    for outcome in outcomes:
        by_recording[outcome.recording_id].append(outcome)
    for rid, size in scene.sizes.items():
        final = scene.repository.get(rid)
        assert final is not None
        _check_recording(final, size, by_recording[rid])
        if size is None:
            assert final.status in {RecordingStatus.UPLOADING, RecordingStatus.FAILED}
