"""TranscriptionWorker processes racing on PostgreSQL, dying, retrying and stopping on SIGTERM.

Each worker process builds its own service over the shared PostgreSQL database
and a LocalStorage directory, as separate hosts would over one database and
one bucket. The transcribers are hand-written fakes that append one line per
event to a ledger file opened with ``O_APPEND``, so every call by every
process is counted.
"""

from __future__ import annotations

import collections
import multiprocessing
import multiprocessing.synchronize
import os
import random
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
import sqlalchemy as sa

from helppet_recordings import (
    RecordingService,
    RecordingSettings,
    RecordingStatus,
    SqlAlchemyRepository,
)
from helppet_recordings.models import Recording
from helppet_recordings.storage.local import LocalStorage
from helppet_recordings.transcription import (
    Transcript,
    TranscriptionInput,
    TranscriptionWorker,
    TransientTranscriptionError,
    speech_sample,
)
from tests.support.audio import encode_tone

USER = uuid.UUID("6d0f3f51-52f4-4d7e-a4c5-3b7f0c9e6a20")
SECRET = "worker-test-secret-0123456789abcdef"
TONE = encode_tone("wav", 0.25)
PROCESS_START_TIMEOUT = 60.0
# Not fork: the parent runs threads. A fork server imports this module once, then
# forks each worker from that single-threaded process, which starts them fast.
WORKERS = multiprocessing.get_context("forkserver")
WORKERS.set_forkserver_preload([__name__])


@attrs.frozen
class Site:
    """Where the recordings live: the database URL and the storage directory."""

    database_url: str
    storage_root: str

    def storage(self) -> LocalStorage:
        """The LocalStorage every process opens on the shared directory."""
        return LocalStorage(self.storage_root, "http://127.0.0.1:9", SECRET, fsync=False)

    def service(self) -> tuple[RecordingService, SqlAlchemyRepository]:
        """A service of this process's own, and its repository (to close)."""
        repository = SqlAlchemyRepository.from_url(self.database_url)
        settings = RecordingSettings(max_file_size=1_000_000)
        return RecordingService(self.storage(), repository, settings), repository


@attrs.frozen
class LedgerTranscriber:
    """Writes ``start``/``done`` lines with the recording id and its pid; sleeps in between."""

    ledger: str
    seconds: float = 0.0
    name: str = "ledger"

    def transcribe(self, audio: TranscriptionInput) -> Transcript:
        """Record the call, take ``seconds``, and answer with the process id."""
        self._write("start", audio)
        time.sleep(self.seconds)
        self._write("done", audio)
        return Transcript(f"from {os.getpid()}", service=self.name)

    def _write(self, event: str, audio: TranscriptionInput) -> None:
        line = f"{event} {audio.recording_id} {os.getpid()} {audio.attempt}\n".encode()
        fd = os.open(self.ledger, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line)  # one write with O_APPEND: lines never interleave
        finally:
            os.close(fd)


def _ledger(path: Path) -> list[tuple[str, uuid.UUID, int, int]]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        event, rid, pid, attempt = line.split()
        rows.append((event, uuid.UUID(rid), int(pid), int(attempt)))
    return rows


# ------------------------------------------------------------ what the worker processes run


def _drain_together(
    site: Site, ledger: str, barrier: multiprocessing.synchronize.Barrier, taken: Any
) -> None:
    """Wait for the other workers, then take everything ready; report how many."""
    service, repository = site.service()
    with repository:
        worker = TranscriptionWorker(service, LedgerTranscriber(ledger, seconds=0.02))
        barrier.wait(timeout=PROCESS_START_TIMEOUT)
        taken.put(worker.run_once())


def _run_until_signalled(site: Site, ledger: str, seconds: float, lease_seconds: int) -> None:
    """Run a worker loop the way a deployment does: until SIGTERM."""
    service, repository = site.service()
    with repository:
        worker = TranscriptionWorker(
            service,
            LedgerTranscriber(ledger, seconds=seconds),
            lease_seconds=lease_seconds,
            poll_interval=0.05,
        )
        worker.install_signal_handlers()
        worker.run()


# ------------------------------------------------------------------------------ fixtures


@pytest.fixture
def site(shared_postgres_url: str, postgres_admin_engine: sa.Engine, tmp_path: Path) -> Site:
    """The shared PostgreSQL database, emptied, and a fresh storage directory."""
    with postgres_admin_engine.begin() as connection:
        connection.execute(sa.text("TRUNCATE recordings"))
    return Site(shared_postgres_url, str(tmp_path / "storage"))


@attrs.define
class Clinic:
    """The parent's own service on the site: uploads recordings and reads them back."""

    site: Site
    service: RecordingService
    repository: SqlAlchemyRepository
    storage: LocalStorage

    def upload(self, body: bytes = TONE, content_type: str = "audio/wav") -> uuid.UUID:
        """Initiate, store through the signed form fields, and complete one recording."""
        extension = {"audio/wav": "wav", "audio/flac": "flac"}[content_type]
        ticket = self.service.initiate_upload(
            USER, {"filename": f"visit.{extension}", "content_type": content_type}
        )
        fields = {name.lower(): value for name, value in ticket.upload_fields.items()}
        with self.storage.stage(self.storage.verify_upload(fields)) as staged:
            staged.write(body)
            staged.commit()
        self.service.complete_upload(USER, ticket.recording_id, {"file_size_bytes": len(body)})
        return ticket.recording_id

    def get(self, rid: uuid.UUID) -> Recording:
        """The stored recording."""
        recording = self.repository.get(rid)
        assert recording is not None
        return recording


@pytest.fixture
def clinic(site: Site) -> Iterator[Clinic]:
    """The parent's service on the site."""
    service, repository = site.service()
    with repository:
        yield Clinic(site, service, repository, site.storage())


@pytest.fixture
def processes() -> Iterator[Callable[..., multiprocessing.process.BaseProcess]]:
    """Start worker processes; any still alive at the end are killed by PID."""
    started: list[multiprocessing.process.BaseProcess] = []

    def start(target: Callable[..., None], *args: object) -> multiprocessing.process.BaseProcess:
        process = WORKERS.Process(target=target, args=args, daemon=True)
        process.start()
        started.append(process)
        return process

    yield start
    for process in started:
        if process.is_alive():
            process.kill()
        process.join(timeout=10)


def _wait_for(condition: Callable[[], bool], timeout: float = PROCESS_START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


# --------------------------------------------------------------------------------- tests


def test_three_worker_processes_transcribe_twenty_recordings_exactly_once(
    clinic: Clinic,
    tmp_path: Path,
    processes: Callable[..., multiprocessing.process.BaseProcess],
) -> None:
    """Every recording is transcribed once, by one process, on its first attempt."""
    ids = {clinic.upload() for _ in range(20)}
    ledger = tmp_path / "ledger"
    barrier = WORKERS.Barrier(3)
    taken = WORKERS.Queue()
    workers = [
        processes(_drain_together, clinic.site, str(ledger), barrier, taken) for _ in range(3)
    ]
    counts = [taken.get(timeout=PROCESS_START_TIMEOUT) for _ in workers]
    for worker in workers:
        worker.join(timeout=PROCESS_START_TIMEOUT)
        assert worker.exitcode == 0

    assert sum(counts) == 20
    calls = [(rid, pid) for event, rid, pid, _ in _ledger(ledger) if event == "start"]
    per_recording = collections.Counter(rid for rid, _ in calls)
    assert set(per_recording) == ids
    assert max(per_recording.values()) == 1
    assert len({pid for _, pid in calls}) >= 2  # they did race for the work
    for rid in ids:
        done = clinic.get(rid)
        assert (done.status, done.processing_attempts) == (RecordingStatus.TRANSCRIBED, 1)
        assert done.transcript_text == f"from {dict(calls)[rid]}"


def test_a_killed_workers_recording_is_finished_by_another_after_its_lease(
    clinic: Clinic,
    tmp_path: Path,
    processes: Callable[..., multiprocessing.process.BaseProcess],
) -> None:
    """SIGKILL mid-transcription: once the 2 s lease has run out another worker takes over."""
    rid = clinic.upload()
    ledger = tmp_path / "ledger"
    doomed = processes(_run_until_signalled, clinic.site, str(ledger), 60.0, 2)
    _wait_for(lambda: any(event == "start" for event, *_ in _ledger(ledger)))
    doomed.kill()
    doomed.join(timeout=10)
    assert doomed.exitcode == -signal.SIGKILL
    abandoned = clinic.get(rid)
    assert (abandoned.status, abandoned.processing_attempts) == (RecordingStatus.PROCESSING, 1)
    assert abandoned.lease_expires_at is not None

    survivor = TranscriptionWorker(clinic.service, LedgerTranscriber(str(ledger)), lease_seconds=2)
    _wait_for(lambda: survivor.run_once() == 1, timeout=30)
    done = clinic.get(rid)
    assert (done.status, done.processing_attempts) == (RecordingStatus.TRANSCRIBED, 2)
    assert done.transcript_text == f"from {os.getpid()}"
    assert done.processing_started_at is not None
    assert done.processing_started_at >= abandoned.lease_expires_at  # not before the lease ended
    assert [(event, pid, attempt) for event, _, pid, attempt in _ledger(ledger)] == [
        ("start", doomed.pid, 1),
        ("start", os.getpid(), 2),
        ("done", os.getpid(), 2),
    ]


def test_sigterm_stops_run_after_the_current_recording(
    clinic: Clinic,
    tmp_path: Path,
    processes: Callable[..., multiprocessing.process.BaseProcess],
) -> None:
    """The job in progress is finished and stored; nothing more is taken; the process exits 0."""
    ids = [clinic.upload() for _ in range(3)]
    ledger = tmp_path / "ledger"
    worker = processes(_run_until_signalled, clinic.site, str(ledger), 1.0, 900)
    _wait_for(lambda: any(event == "start" for event, *_ in _ledger(ledger)))
    assert worker.pid is not None
    os.kill(worker.pid, signal.SIGTERM)
    worker.join(timeout=30)
    assert worker.exitcode == 0
    events = _ledger(ledger)
    assert [event for event, *_ in events] == ["start", "done"]
    finished = events[0][1]
    assert clinic.get(finished).status is RecordingStatus.TRANSCRIBED
    for rid in ids:
        if rid != finished:
            waiting = clinic.get(rid)
            assert (waiting.status, waiting.processing_attempts) == (RecordingStatus.UPLOADED, 0)


@attrs.define
class FlakyTranscriber:
    """Fails transiently ``failures`` times, then transcribes."""

    failures: int
    attempts: list[int] = attrs.Factory(list)
    name: str = "flaky"

    def transcribe(self, audio: TranscriptionInput) -> Transcript:
        """Raise ``TransientTranscriptionError`` until the failures are used up."""
        self.attempts.append(audio.attempt)
        if len(self.attempts) <= self.failures:
            raise TransientTranscriptionError("the service answered 503")
        return Transcript("third time lucky", service=self.name)


def test_two_transient_failures_then_success_on_the_third_attempt(clinic: Clinic) -> None:
    """Deferred twice (no wait here), then transcribed: processing_attempts == 3."""
    rid = clinic.upload()
    transcriber = FlakyTranscriber(failures=2)
    worker = TranscriptionWorker(clinic.service, transcriber, retry_base_seconds=0)
    assert worker.run_once() == 3
    done = clinic.get(rid)
    assert (done.status, done.processing_attempts) == (RecordingStatus.TRANSCRIBED, 3)
    assert done.transcript_text == "third time lucky"
    assert transcriber.attempts == [1, 2, 3]


def test_a_corrupt_file_fails_with_the_decode_reason(clinic: Clinic) -> None:
    """A real FLAC header and STREAMINFO, then garbage: failed with AUDIO_UNDECODABLE (corrupt)."""
    body = speech_sample().data[:42] + random.Random(3).randbytes(20_000)
    rid = clinic.upload(body, "audio/flac")
    transcriber = FlakyTranscriber(failures=0)
    assert TranscriptionWorker(clinic.service, transcriber).run_once() == 1
    failed = clinic.get(rid)
    assert (failed.status, failed.processing_attempts) == (RecordingStatus.FAILED, 1)
    assert failed.processing_error is not None
    assert failed.processing_error.startswith("AUDIO_UNDECODABLE (corrupt)")
    assert failed.audio is None
    assert transcriber.attempts == []
