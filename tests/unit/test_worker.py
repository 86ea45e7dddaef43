"""TranscriptionWorker on the in-memory backends, a movable clock and hand-written transcribers."""

from __future__ import annotations

import datetime as dt
import logging
import os
import random
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from types import FrameType

import attrs
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader

from helppet_recordings import (
    InMemoryRepository,
    InMemoryStorage,
    RecordingService,
    RecordingSettings,
    RecordingStatus,
    RepositoryUnavailableError,
    StorageUnavailableError,
    ValidationError,
)
from helppet_recordings.metrics import RecordingMetrics
from helppet_recordings.models import Recording
from helppet_recordings.testing.clock import FakeClock
from helppet_recordings.transcription import (
    PermanentTranscriptionError,
    TranscriberConfigurationError,
    Transcript,
    TranscriptionInput,
    TranscriptionWorker,
    TransientTranscriptionError,
    speech_sample,
)
from tests.support.audio import encode_tone

USER = uuid.UUID("0b7c5a52-3a3e-4f0f-8a55-4c1e8f3d2a10")
ORIGINAL_FILENAME = "Rex-the-dog-visit.wav"
TONE = encode_tone("wav", 0.5)
SECRET_TEXT = "Rex has a heart murmur"

Step = Callable[[TranscriptionInput], Transcript]


def _answer(text: str = SECRET_TEXT) -> Step:
    def step(_audio: TranscriptionInput) -> Transcript:
        return Transcript(text, 0.8, "en-US", service="fake")

    return step


def _raise(error: Exception) -> Step:
    def step(_audio: TranscriptionInput) -> Transcript:
        raise error

    return step


@attrs.define
class ScriptedTranscriber:
    """Plays one step per call (the last one repeats) and keeps what it was given."""

    steps: list[Step]
    calls: list[TranscriptionInput] = attrs.Factory(list)
    bodies: list[bytes] = attrs.Factory(list)
    read_audio: bool = True
    name: str = "fake"

    def transcribe(self, audio: TranscriptionInput) -> Transcript:
        """Read the audio (when asked to) and play the next step."""
        self.calls.append(audio)
        if self.read_audio:
            with audio.open() as stream:
                self.bodies.append(stream.read())
        step = self.steps[min(len(self.calls), len(self.steps)) - 1]
        return step(audio)


class CountingStorage(InMemoryStorage):
    """The in-memory storage, counting ranged reads and failing the next ``outages`` of them."""

    def __init__(self, bucket: str) -> None:
        super().__init__(bucket)
        self.reads = 0
        self.outages = 0

    def read_range(self, key: str, *, offset: int, length: int) -> bytes | None:
        """Count the read, or raise ``StorageUnavailableError`` while an outage lasts."""
        self._count()
        return super().read_range(key, offset=offset, length=length)

    def read_pinned(self, key: str, *, etag: str, offset: int, length: int) -> bytes | None:
        """Count the pinned read (the worker's), or raise while an outage lasts."""
        self._count()
        return super().read_pinned(key, etag=etag, offset=offset, length=length)

    def _count(self) -> None:
        if self.outages:
            self.outages -= 1
            raise StorageUnavailableError(retry_after=7)
        self.reads += 1


class FlakyRepository(InMemoryRepository):
    """The in-memory repository, whose next ``outages`` claims find the database unreachable."""

    def __init__(self) -> None:
        super().__init__()
        self.outages = 0
        self.claims = 0

    def claim_work(
        self, *, now: dt.datetime, limit: int, lease_until: dt.datetime
    ) -> list[Recording]:
        """Claim as the in-memory repository does, unless an outage is due."""
        self.claims += 1
        if self.outages:
            self.outages -= 1
            raise RepositoryUnavailableError(retry_after=0)
        return super().claim_work(now=now, limit=limit, lease_until=lease_until)


@attrs.define
class Scene:
    """A service on counting storage, a flaky repository and a fake clock."""

    service: RecordingService
    storage: CountingStorage
    repository: FlakyRepository
    clock: FakeClock

    def upload(self, body: bytes = TONE, content_type: str = "audio/wav") -> uuid.UUID:
        """Initiate, store and complete one recording; return its id."""
        extension = {"audio/wav": "wav", "audio/flac": "flac"}[content_type]
        ticket = self.service.initiate_upload(
            USER,
            {
                "filename": ORIGINAL_FILENAME.replace(".wav", f".{extension}"),
                "content_type": content_type,
            },
        )
        self.storage.put_object(ticket.s3_key, body, content_type=content_type)
        self.service.complete_upload(USER, ticket.recording_id, {"file_size_bytes": len(body)})
        return ticket.recording_id

    def get(self, rid: uuid.UUID) -> Recording:
        """The stored recording."""
        recording = self.repository.get(rid)
        assert recording is not None
        return recording

    def worker(self, transcriber: ScriptedTranscriber, **options: float) -> TranscriptionWorker:
        """A worker on this service with seeded jitter."""
        options.setdefault("poll_interval", 0.01)
        return TranscriptionWorker(
            self.service,
            transcriber,
            rng=random.Random(4),
            **options,  # type: ignore[arg-type]
        )


@pytest.fixture
def scene() -> Scene:
    """A fresh service on empty backends."""
    clock = FakeClock()
    storage = CountingStorage("helppet-audio-recordings")
    repository = FlakyRepository()
    service = RecordingService(
        storage, repository, RecordingSettings(max_file_size=1_000_000), clock=clock
    )
    return Scene(service, storage, repository, clock)


def test_a_recording_is_measured_transcribed_and_its_input_complete(scene: Scene) -> None:
    """The transcriber gets id, attempt 1, the exact bytes, size, type and the measured audio."""
    rid = scene.upload()
    transcriber = ScriptedTranscriber([_answer()])
    assert scene.worker(transcriber).run_once() == 1
    done = scene.get(rid)
    assert done.status is RecordingStatus.TRANSCRIBED
    assert (done.transcript_text, done.transcript_confidence) == (SECRET_TEXT, 0.8)
    assert (done.transcript_language, done.transcription_service) == ("en-US", "fake")
    assert (done.processing_attempts, done.lease_expires_at) == (1, None)
    assert done.audio is not None
    assert (done.audio.format, done.audio.codec) == ("wav", "pcm_s16le")
    assert done.audio.duration_seconds == pytest.approx(0.5, abs=0.001)
    [given] = transcriber.calls
    assert (given.recording_id, given.attempt, given.size) == (rid, 1, len(TONE))
    assert (given.mime_type, given.s3_uri) == ("audio/wav", None)  # memory:// is not S3
    assert given.audio is not None
    assert given.audio.duration_seconds == done.audio.duration_seconds
    assert transcriber.bodies == [TONE]


def test_run_once_takes_at_most_limit_and_then_what_is_left(scene: Scene) -> None:
    """``limit`` caps one run; the next run takes the rest; an empty queue returns 0."""
    ids = [scene.upload() for _ in range(3)]
    worker = scene.worker(ScriptedTranscriber([_answer()], read_audio=False))
    assert worker.run_once(limit=2) == 2
    assert sorted(scene.get(rid).status.value for rid in ids) == [
        "transcribed",
        "transcribed",
        "uploaded",
    ]
    assert worker.run_once() == 1
    assert worker.run_once() == 0
    assert {scene.get(rid).status for rid in ids} == {RecordingStatus.TRANSCRIBED}


def test_a_service_retry_after_is_honoured_and_the_audio_not_measured_again(
    scene: Scene,
) -> None:
    """A transient error with retry_after waits that long; the retry reuses the measured audio."""
    rid = scene.upload()
    transcriber = ScriptedTranscriber(
        [_raise(TransientTranscriptionError("429", retry_after=120)), _answer()], read_audio=False
    )
    worker = scene.worker(transcriber)
    assert worker.run_once() == 1
    waiting = scene.get(rid)
    assert waiting.status is RecordingStatus.UPLOADED
    assert waiting.processing_error is not None
    assert waiting.processing_error.startswith("TRANSCRIPTION_UNAVAILABLE")
    assert waiting.lease_expires_at is not None
    wait = (waiting.lease_expires_at - scene.clock.now).total_seconds()
    assert 120 <= wait <= 132
    reads_after_measuring = scene.storage.reads
    assert reads_after_measuring > 0

    scene.clock.advance(seconds=119)
    assert worker.run_once() == 0  # not before the service's wait
    scene.clock.advance(seconds=14)
    assert worker.run_once() == 1
    done = scene.get(rid)
    assert (done.status, done.processing_attempts) == (RecordingStatus.TRANSCRIBED, 2)
    assert scene.storage.reads == reads_after_measuring
    assert [(call.attempt, call.cycle) for call in transcriber.calls] == [(1, 1), (2, 1)]
    assert transcriber.calls[1].audio == transcriber.calls[0].audio


def test_backoff_grows_with_jitter_until_the_last_attempt_fails(scene: Scene) -> None:
    """Waits of base·2^(n-1) scaled by 0.5..1; after max_attempts the recording is failed."""
    rid = scene.upload()
    transcriber = ScriptedTranscriber([_raise(TransientTranscriptionError("timeout"))])
    worker = scene.worker(transcriber, retry_base_seconds=10, max_attempts=3)
    waits = []
    for _ in range(2):
        assert worker.run_once() == 1
        waiting = scene.get(rid)
        assert waiting.status is RecordingStatus.UPLOADED
        assert waiting.lease_expires_at is not None
        waits.append((waiting.lease_expires_at - scene.clock.now).total_seconds())
        scene.clock.advance(seconds=waits[-1])
    assert 5 <= waits[0] <= 10
    assert 10 <= waits[1] <= 20
    assert worker.run_once() == 1
    failed = scene.get(rid)
    assert (failed.status, failed.processing_attempts) == (RecordingStatus.FAILED, 3)
    assert failed.processing_error is not None
    assert failed.processing_error.startswith("gave up after 3 attempts: TRANSCRIPTION_UNAVAILABLE")
    assert [call.attempt for call in transcriber.calls] == [1, 2, 3]


@pytest.mark.parametrize("hint", [float("inf"), float("nan"), 1e12])
def test_a_service_wait_beyond_reason_is_capped_not_a_crash(scene: Scene, hint: float) -> None:
    """retry_after of inf, NaN or 1e12 s defers the recording; the worker keeps running."""
    rid = scene.upload()
    transcriber = ScriptedTranscriber(
        [_raise(TransientTranscriptionError("429", retry_after=hint))], read_audio=False
    )
    assert scene.worker(transcriber, retry_max_seconds=600).run_once() == 1
    waiting = scene.get(rid)
    assert waiting.status is RecordingStatus.UPLOADED
    assert waiting.lease_expires_at is not None
    wait = (waiting.lease_expires_at - scene.clock.now).total_seconds()
    assert 0 < wait <= 660


def test_retry_delays_stay_within_their_bounds(scene: Scene) -> None:
    """Backoff is capped at retry_max; an outage's retry_after is a floor, a service's the wait."""
    worker = scene.worker(ScriptedTranscriber([]), retry_base_seconds=2, retry_max_seconds=50)
    for attempt in range(1, 12):
        expected = min(50, 2 * 2 ** (attempt - 1))
        assert expected / 2 <= worker.retry_delay(attempt) <= expected
    assert worker.retry_delay(1, StorageUnavailableError(retry_after=9)) >= 9
    hinted = worker.retry_delay(9, TransientTranscriptionError(retry_after=3))
    assert 3 <= hinted <= 3.3


def test_a_permanent_error_fails_the_recording_at_once(scene: Scene) -> None:
    """PermanentTranscriptionError: failed on the first attempt, with its reason."""
    rid = scene.upload()
    transcriber = ScriptedTranscriber([_raise(PermanentTranscriptionError(reason="too_long"))])
    assert scene.worker(transcriber).run_once() == 1
    failed = scene.get(rid)
    assert (failed.status, failed.processing_attempts) == (RecordingStatus.FAILED, 1)
    assert failed.processing_error is not None
    assert failed.processing_error.startswith("TRANSCRIPTION_FAILED (too_long)")


def test_undecodable_audio_fails_without_reaching_the_transcriber(scene: Scene) -> None:
    """A FLAC header followed by garbage: failed with the decode reason, nothing transcribed."""
    header = speech_sample().data[:42]  # "fLaC" and STREAMINFO
    body = header + random.Random(1).randbytes(30_000)
    rid = scene.upload(body, "audio/flac")
    transcriber = ScriptedTranscriber([_answer()])
    assert scene.worker(transcriber).run_once() == 1
    failed = scene.get(rid)
    assert failed.status is RecordingStatus.FAILED
    assert failed.processing_error is not None
    assert failed.processing_error.startswith("AUDIO_UNDECODABLE (corrupt)")
    assert failed.audio is None
    assert transcriber.calls == []


def test_a_vanished_object_fails_the_recording(scene: Scene) -> None:
    """The verified object is gone from storage: failed with object_missing."""
    rid = scene.upload()
    scene.storage.delete(scene.get(rid).s3_key)
    assert scene.worker(ScriptedTranscriber([_answer()])).run_once() == 1
    failed = scene.get(rid)
    assert failed.status is RecordingStatus.FAILED
    assert failed.processing_error is not None
    assert failed.processing_error.startswith("UPLOAD_VERIFICATION_FAILED (object_missing)")


def test_a_storage_outage_defers_for_at_least_its_retry_after(scene: Scene) -> None:
    """Storage unavailable while measuring: back to uploaded, waiting at least retry_after."""
    rid = scene.upload()
    scene.storage.outages = 1
    worker = scene.worker(ScriptedTranscriber([_answer()]), retry_base_seconds=1)
    assert worker.run_once() == 1
    waiting = scene.get(rid)
    assert waiting.status is RecordingStatus.UPLOADED
    assert waiting.lease_expires_at is not None
    assert (waiting.lease_expires_at - scene.clock.now).total_seconds() >= 7
    scene.clock.advance(seconds=8)
    assert worker.run_once() == 1
    assert scene.get(rid).status is RecordingStatus.TRANSCRIBED


def test_a_configuration_error_keeps_the_recording_waiting_and_stops_the_worker(
    scene: Scene, caplog: pytest.LogCaptureFixture
) -> None:
    """The recording goes back to uploaded, not failed; the next is not touched; run_once raises."""
    first, second = scene.upload(), scene.upload()
    transcriber = ScriptedTranscriber(
        [_raise(TranscriberConfigurationError("bad key"))], read_audio=False
    )
    worker = scene.worker(transcriber)
    with (
        caplog.at_level(logging.ERROR, "helppet_recordings.worker"),
        pytest.raises(TranscriberConfigurationError),
    ):
        worker.run_once()
    assert len(transcriber.calls) == 1
    taken = transcriber.calls[0].recording_id
    untouched = second if taken == first else first
    waiting = scene.get(taken)
    assert waiting.status is RecordingStatus.UPLOADED
    assert waiting.processing_error is not None
    assert waiting.processing_error.startswith("TRANSCRIPTION_UNAVAILABLE")
    assert scene.get(untouched).processing_attempts == 0
    assert any(r.levelno == logging.ERROR and str(taken) in r.getMessage() for r in caplog.records)


def test_run_stops_on_a_configuration_error(scene: Scene) -> None:
    """``run`` raises the configuration error instead of looping on it."""
    scene.upload()
    transcriber = ScriptedTranscriber([_raise(TranscriberConfigurationError())], read_audio=False)
    worker, stop = scene.worker(transcriber), threading.Event()
    raised: list[Exception] = []

    def target() -> None:
        try:
            worker.run(stop=stop)
        except TranscriberConfigurationError as exc:
            raised.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout=5)
    stop.set()  # only matters if run() kept looping
    thread.join(timeout=5)
    assert len(raised) == 1
    assert len(transcriber.calls) == 1


def test_a_late_result_is_dropped_when_another_worker_took_over(
    scene: Scene, caplog: pytest.LogCaptureFixture
) -> None:
    """The first worker outlives its lease; the second one's transcript stands, logged at INFO."""
    rid = scene.upload()
    second = scene.worker(ScriptedTranscriber([_answer("second")]), lease_seconds=60)

    def slow(_audio: TranscriptionInput) -> Transcript:
        scene.clock.advance(seconds=61)
        assert second.run_once() == 1
        return Transcript("first", service="fake")

    first = scene.worker(ScriptedTranscriber([slow]), lease_seconds=60)
    with caplog.at_level(logging.INFO, "helppet_recordings.worker"):
        assert first.run_once() == 1
    done = scene.get(rid)
    assert (done.status, done.transcript_text) == (RecordingStatus.TRANSCRIBED, "second")
    assert done.processing_attempts == 2
    dropped = [r for r in caplog.records if "dropped" in r.getMessage()]
    assert [r.levelno for r in dropped] == [logging.INFO]
    assert "claim_lost" in dropped[0].getMessage()


def test_a_recording_deleted_during_transcription_is_left_alone(scene: Scene) -> None:
    """The owner deletes it mid-job: the worker drops the result without an error."""
    rid = scene.upload()

    def deleting(_audio: TranscriptionInput) -> Transcript:
        scene.service.delete_recording(USER, rid)
        return Transcript("text", service="fake")

    assert scene.worker(ScriptedTranscriber([deleting])).run_once() == 1
    gone = scene.get(rid)
    assert gone.is_deleted
    assert gone.transcript_text is None


def test_an_unexpected_exception_is_retried_and_its_message_never_logged(
    scene: Scene, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug's message may quote content: only its type and source line are stored and logged."""
    rid = scene.upload()
    leak = RuntimeError(f"{ORIGINAL_FILENAME}: {SECRET_TEXT}")
    with caplog.at_level(logging.DEBUG, "helppet_recordings"):
        assert scene.worker(ScriptedTranscriber([_raise(leak)])).run_once() == 1
    waiting = scene.get(rid)
    assert waiting.status is RecordingStatus.UPLOADED
    assert waiting.processing_error is not None
    assert waiting.processing_error.startswith("unexpected RuntimeError at test_worker.py:")
    assert "Rex" not in waiting.processing_error
    assert caplog.records
    assert not any("Rex" in r.getMessage() for r in caplog.records)


def test_logs_carry_the_id_and_no_content(scene: Scene, caplog: pytest.LogCaptureFixture) -> None:
    """A transcribed recording logs its id, never its transcript, file name or key."""
    rid = scene.upload()
    key = scene.get(rid).s3_key
    with caplog.at_level(logging.DEBUG, "helppet_recordings"):
        scene.worker(ScriptedTranscriber([_answer()])).run_once()
    worker_lines = [r.getMessage() for r in caplog.records if r.name == "helppet_recordings.worker"]
    assert any(str(rid) in line for line in worker_lines)
    for record in caplog.records:
        message = record.getMessage()
        assert SECRET_TEXT not in message
        assert "Rex" not in message
        assert key not in message


def test_a_recording_abandoned_max_attempts_times_is_failed(scene: Scene) -> None:
    """Workers that died on it three times: the fourth claim fails it instead of trying again."""
    rid = scene.upload()
    for _ in range(3):
        [claimed] = scene.service.claim_for_processing(lease_seconds=60)
        scene.service.begin_processing(claimed)  # ... and the worker dies
        scene.clock.advance(seconds=61)
    transcriber = ScriptedTranscriber([_answer()])
    assert scene.worker(transcriber, max_attempts=3).run_once() == 1
    failed = scene.get(rid)
    assert (failed.status, failed.processing_attempts) == (RecordingStatus.FAILED, 4)
    assert failed.processing_error is not None
    assert failed.processing_error.startswith("abandoned: 3 attempts did not finish")
    assert transcriber.calls == []


def test_a_taken_over_recording_within_its_attempts_is_finished(scene: Scene) -> None:
    """One dead worker: the next one resumes the processing recording and transcribes it."""
    rid = scene.upload()
    [claimed] = scene.service.claim_for_processing(lease_seconds=60)
    scene.service.begin_processing(claimed)
    scene.clock.advance(seconds=61)
    transcriber = ScriptedTranscriber([_answer()])
    assert scene.worker(transcriber).run_once() == 1
    done = scene.get(rid)
    assert (done.status, done.processing_attempts) == (RecordingStatus.TRANSCRIBED, 2)
    assert (transcriber.calls[0].attempt, transcriber.calls[0].cycle) == (2, 1)


def test_a_reprocessed_recording_is_transcribed_again(scene: Scene) -> None:
    """reprocess() after a permanent failure: attempt 1 again, in the next cycle."""
    rid = scene.upload()
    transcriber = ScriptedTranscriber(
        [_raise(PermanentTranscriptionError(reason="refused")), _answer()], read_audio=False
    )
    worker = scene.worker(transcriber)
    worker.run_once()
    assert scene.get(rid).status is RecordingStatus.FAILED
    scene.service.reprocess(rid)
    assert worker.run_once() == 1
    done = scene.get(rid)
    assert (done.status, done.processing_attempts) == (RecordingStatus.TRANSCRIBED, 1)
    assert done.processing_cycle == 2
    assert [(call.attempt, call.cycle) for call in transcriber.calls] == [(1, 1), (1, 2)]


@pytest.fixture
def running(scene: Scene) -> Iterator[Callable[..., threading.Thread]]:
    """Start ``worker.run`` in a thread; the test stops it, and it is joined afterwards."""
    threads: list[threading.Thread] = []

    def start(worker: TranscriptionWorker, stop: threading.Event) -> threading.Thread:
        thread = threading.Thread(target=worker.run, kwargs={"stop": stop}, daemon=True)
        thread.start()
        threads.append(thread)
        return thread

    yield start
    for thread in threads:
        thread.join(timeout=5)


def _wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_run_picks_up_new_work_and_stops_promptly(
    scene: Scene, running: Callable[..., threading.Thread]
) -> None:
    """``run`` polls for uploads that arrive later and returns soon after ``stop`` is set."""
    worker = scene.worker(ScriptedTranscriber([_answer()], read_audio=False), poll_interval=0.02)
    stop = threading.Event()
    thread = running(worker, stop)
    rid = scene.upload()
    _wait_for(lambda: scene.get(rid).status is RecordingStatus.TRANSCRIBED)
    stop.set()
    thread.join(timeout=2)
    assert not thread.is_alive()


def test_stop_wakes_a_long_poll_at_once(
    scene: Scene, running: Callable[..., threading.Thread]
) -> None:
    """With a poll interval of minutes, stop() still ends ``run`` within moments."""
    worker = scene.worker(ScriptedTranscriber([]), poll_interval=300)
    thread = running(worker, threading.Event())
    _wait_for(lambda: scene.repository.claims >= 1)
    began = time.monotonic()
    worker.stop()
    thread.join(timeout=2)
    assert not thread.is_alive()
    assert time.monotonic() - began < 1


def test_run_waits_out_a_database_outage(
    scene: Scene, running: Callable[..., threading.Thread], caplog: pytest.LogCaptureFixture
) -> None:
    """Claims that find the database down are logged and retried; work resumes after it."""
    rid = scene.upload()
    scene.repository.outages = 3
    worker = scene.worker(ScriptedTranscriber([_answer()], read_audio=False))
    stop = threading.Event()
    with caplog.at_level(logging.WARNING, "helppet_recordings.worker"):
        thread = running(worker, stop)
        _wait_for(lambda: scene.get(rid).status is RecordingStatus.TRANSCRIBED)
        stop.set()
        thread.join(timeout=2)
    outages = [r for r in caplog.records if "DATABASE_UNAVAILABLE" in r.getMessage()]
    assert len(outages) == 3


def test_run_once_raises_when_the_database_is_down(scene: Scene) -> None:
    """Without a loop to wait in, run_once reports the outage to its caller."""
    scene.repository.outages = 1
    with pytest.raises(RepositoryUnavailableError):
        scene.worker(ScriptedTranscriber([])).run_once()


def test_signal_handler_stops_the_worker_and_restores_the_previous_handler(
    scene: Scene,
) -> None:
    """The first signal sets the stop event and hands later signals back to the old handler."""
    seen: list[int] = []

    def previous(signum: int, _frame: FrameType | None) -> None:
        seen.append(signum)

    original = signal.signal(signal.SIGUSR1, previous)
    try:
        worker = scene.worker(ScriptedTranscriber([]))
        stop = worker.install_signal_handlers([signal.SIGUSR1])
        assert signal.getsignal(signal.SIGUSR1) is not previous
        os.kill(os.getpid(), signal.SIGUSR1)
        assert stop.wait(5)
        assert signal.getsignal(signal.SIGUSR1) is previous
        assert worker.run_once() == 0  # a stopped worker takes nothing more
        os.kill(os.getpid(), signal.SIGUSR1)
        _wait_for(lambda: seen == [signal.SIGUSR1])
    finally:
        signal.signal(signal.SIGUSR1, original)


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("max_attempts", 0),
        ("lease_seconds", 0),
        ("poll_interval", 0),
        ("retry_base_seconds", -1),
        ("retry_max_seconds", 1),
        ("retry_max_seconds", float("inf")),
        ("retry_max_seconds", 8 * 24 * 3600),
        ("lease_seconds", 10**12),
    ],
)
def test_bad_options_are_refused(scene: Scene, option: str, value: float) -> None:
    """Options out of range raise VALIDATION_ERROR naming the option."""
    with pytest.raises(ValidationError):
        TranscriptionWorker(scene.service, ScriptedTranscriber([]), **{option: value})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("max_attempts", "3"),
        ("max_attempts", True),
        ("max_attempts", 2.5),
        ("lease_seconds", 1.5),
        ("lease_seconds", "900"),
        ("poll_interval", "5"),
        ("poll_interval", float("nan")),
        ("poll_interval", True),
        ("retry_base_seconds", "30"),
        ("retry_base_seconds", float("nan")),
        ("retry_max_seconds", None),
    ],
)
def test_options_of_the_wrong_type_are_refused_by_name(
    scene: Scene, option: str, value: object
) -> None:
    """A string, a fraction or a boolean option is a VALIDATION_ERROR naming it, not a TypeError."""
    with pytest.raises(ValidationError) as refused:
        TranscriptionWorker(scene.service, ScriptedTranscriber([]), **{option: value})  # type: ignore[arg-type]
    assert refused.value.details["errors"][0]["field"] == option


def test_a_limit_below_one_is_refused(scene: Scene) -> None:
    """run_once(limit=0) is a VALIDATION_ERROR, not a silent no-op."""
    with pytest.raises(ValidationError):
        scene.worker(ScriptedTranscriber([])).run_once(limit=0)


@pytest.mark.parametrize("limit", ["2", 1.5, True, 2.0])
def test_a_limit_that_is_not_a_positive_integer_is_refused(scene: Scene, limit: object) -> None:
    """A string, a fraction, a float or a boolean limit is a VALIDATION_ERROR; nothing is taken."""
    ids = [scene.upload() for _ in range(2)]
    transcriber = ScriptedTranscriber([_answer()], read_audio=False)
    with pytest.raises(ValidationError) as refused:
        scene.worker(transcriber).run_once(limit=limit)  # type: ignore[arg-type]
    assert refused.value.error_code == "VALIDATION_ERROR"
    assert refused.value.details["errors"][0]["field"] == "limit"
    assert transcriber.calls == []
    assert [scene.get(rid).status for rid in ids] == [RecordingStatus.UPLOADED] * 2


def test_the_worker_is_part_of_the_transcription_surface() -> None:
    """``from helppet_recordings.transcription import TranscriptionWorker`` (contract section 8)."""
    from helppet_recordings import transcription  # noqa: PLC0415

    assert "TranscriptionWorker" in transcription.__all__
    assert transcription.TranscriptionWorker is TranscriptionWorker


def test_a_transcript_with_characters_no_database_stores_is_kept_without_them(
    scene: Scene,
) -> None:
    """NUL is dropped and a lone surrogate replaced: the paid transcript is not thrown away."""
    rid = scene.upload()
    transcriber = ScriptedTranscriber([_answer("Rex\x00 is \ud83d fine")], read_audio=False)
    assert scene.worker(transcriber).run_once() == 1
    done = scene.get(rid)
    assert done.status is RecordingStatus.TRANSCRIBED
    assert done.transcript_text == "Rex is \ufffd fine"


def test_each_transcriber_call_is_timed_with_its_outcome() -> None:
    """transcription.duration gets one point per call: deferred, failed, transcribed."""
    reader = InMemoryMetricReader()
    clock = FakeClock()
    storage = CountingStorage("helppet-audio-recordings")
    repository = FlakyRepository()
    service = RecordingService(
        storage,
        repository,
        RecordingSettings(max_file_size=1_000_000),
        clock=clock,
        metrics=RecordingMetrics(MeterProvider(metric_readers=[reader])),
    )
    scene = Scene(service, storage, repository, clock)
    first, second = scene.upload(), scene.upload()
    transcriber = ScriptedTranscriber(
        [
            _raise(TransientTranscriptionError("503")),
            _raise(PermanentTranscriptionError(reason="refused")),
            _answer(),
        ],
        read_audio=False,
    )
    worker = scene.worker(transcriber)
    assert worker.run_once() == 2
    clock.advance(hours=2)
    assert worker.run_once() == 1
    assert {scene.get(first).status, scene.get(second).status} == {
        RecordingStatus.FAILED,
        RecordingStatus.TRANSCRIBED,
    }
    data = reader.get_metrics_data()
    assert data is not None
    counts: dict[object, tuple[object, int]] = {}
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name != "helppet_recordings.transcription.duration":
                    continue
                for point in metric.data.data_points:
                    assert isinstance(point, HistogramDataPoint)
                    labels = dict(point.attributes or {})
                    counts[labels["outcome"]] = (labels["service"], point.count)
    assert counts == {"deferred": ("fake", 1), "failed": ("fake", 1), "transcribed": ("fake", 1)}
