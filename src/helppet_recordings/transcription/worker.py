"""TranscriptionWorker: takes verified uploads, measures their audio and stores their transcripts.

::

    worker = TranscriptionWorker(service, get_transcriber("local"))
    worker.run_once()                         # everything waiting now, then return
    worker.install_signal_handlers()          # SIGTERM / Ctrl-C: finish the current job, stop
    worker.run()                              # until stopped

One recording at a time: the worker claims it (a lease of ``lease_seconds``
that other workers respect), starts processing it (the attempt is counted),
decodes it from storage in ranged reads to measure it (``audio`` on the
recording), transcribes it and stores the transcript, each write carrying the
claim. What happens when something goes wrong:

- ``AudioDecodeError``, ``UploadVerificationError`` (the object vanished or
  changed), ``PermanentTranscriptionError``, a transcript the service
  refuses: the recording is ``failed`` at once, with the reason.
- ``TransientTranscriptionError``, storage or database unavailable, an
  unexpected exception: the recording goes back to ``uploaded`` and is taken
  again after an exponential backoff with jitter (or the wait the
  transcription service asked for, ``retry_after``); once ``max_attempts``
  attempts have been made it is ``failed``.
- ``TranscriberConfigurationError``, ``MissingDependencyError``: the
  recording goes back to ``uploaded`` (it is not its fault, it is never
  failed for this) and the worker stops: ``run`` and ``run_once`` raise the
  error, logged at ERROR.
- The claim was lost (another worker took the recording over after this
  one's lease ran out), or the recording was deleted: the result is dropped,
  logged at INFO; the other worker's attempt stands.

A worker that dies mid-job leaves its recording ``processing`` with a lease
that runs out; another worker then takes it over (the attempt is counted). A
recording abandoned that way more than ``max_attempts`` times (a file that
kills the process, say) is marked ``failed`` instead of being tried forever.

Any number of workers may run at once, in threads (one worker each), processes
or hosts: claims are atomic in the repository, so each recording is worked on
by one worker at a time. Keep ``lease_seconds`` above the longest
transcription you expect (the local transcriber runs at about real time).

Logs go to the ``helppet_recordings.worker`` logger and carry recording ids,
attempts, durations and error codes: never transcript text, file names or
keys.
"""

from __future__ import annotations

import enum
import logging
import random
import signal
import threading
import time
import traceback
from collections.abc import Iterable
from pathlib import PurePath
from types import FrameType
from typing import TYPE_CHECKING, Final

import attrs

from helppet_recordings.audio.errors import AudioDecodeError
from helppet_recordings.audio.probe import AudioInfo, inspect_audio
from helppet_recordings.errors import (
    InvalidStatusTransitionError,
    MissingDependencyError,
    RecordingError,
    RecordingNotFoundError,
    UnavailableError,
    UploadVerificationError,
    ValidationError,
)
from helppet_recordings.models import AudioFacts, Recording
from helppet_recordings.status import RecordingStatus
from helppet_recordings.transcription.base import Transcriber, Transcript, TranscriptionInput
from helppet_recordings.transcription.errors import (
    PermanentTranscriptionError,
    TranscriberConfigurationError,
    TransientTranscriptionError,
)

if TYPE_CHECKING:
    import datetime as dt

    from helppet_recordings.service import RecordingService

__all__ = ["TranscriptionWorker"]

_logger = logging.getLogger("helppet_recordings.worker")

_UNKNOWN_MIME_TYPE: Final = "application/octet-stream"
_SERVICE_HINT_JITTER: Final = 0.1  # a service's Retry-After is stretched by up to 10 %
_MAX_OUTAGE_WAIT_SECONDS: Final = 60.0


class _Kind(enum.Enum):
    """What a failed job means for its recording."""

    DROP = "drop"  # another worker holds it, or it is gone: leave it alone
    PERMANENT = "permanent"  # this audio will never transcribe: fail it
    TRANSIENT = "transient"  # try again later, up to max_attempts
    CONFIGURATION = "configuration"  # the deployment is wrong: keep it waiting, stop


@attrs.frozen
class _Job:
    """One claimed recording being worked on: the claim that every write carries."""

    recording: Recording
    claim: dt.datetime
    started: float

    @property
    def id(self) -> str:
        return str(self.recording.id)

    @property
    def attempt(self) -> int:
        return self.recording.processing_attempts


class TranscriptionWorker:
    """Settles uploaded recordings: each ends ``transcribed`` or ``failed``, or waits for a retry.

    ``service`` is the :class:`~helppet_recordings.RecordingService` whose
    storage holds the audio; ``transcriber`` any :class:`Transcriber`.

    - ``max_attempts``: attempts a recording gets (transient errors, lost
      workers) before it is marked ``failed``.
    - ``lease_seconds``: how long a claim holds a recording; after it, another
      worker may take it over. Must exceed the longest job.
    - ``poll_interval``: seconds :meth:`run` waits when nothing is ready.
    - ``retry_base_seconds`` / ``retry_max_seconds``: the wait after a
      transient error is ``retry_base_seconds * 2 ** (attempt - 1)``, capped at
      ``retry_max_seconds``, with jitter (a random 50 to 100 % of it), so that
      recordings that failed together do not come back together. When the
      transcription service said how long to wait (``retry_after``), that wait
      is used instead.
    - ``rng``: the source of jitter (for reproducible tests).

    An instance is driven by one thread at a time; run one worker per thread
    to work in parallel (they may share a thread-safe transcriber).
    """

    def __init__(
        self,
        service: RecordingService,
        transcriber: Transcriber,
        *,
        max_attempts: int = 3,
        lease_seconds: int = 900,
        poll_interval: float = 5.0,
        retry_base_seconds: float = 30.0,
        retry_max_seconds: float = 3600.0,
        rng: random.Random | None = None,
    ) -> None:
        if max_attempts < 1:
            raise ValidationError.for_field("max_attempts", "must be at least 1")
        if lease_seconds < 1:
            raise ValidationError.for_field("lease_seconds", "must be at least 1")
        if poll_interval <= 0:
            raise ValidationError.for_field("poll_interval", "must be positive")
        if not 0 <= retry_base_seconds <= retry_max_seconds:
            raise ValidationError.for_field(
                "retry_base_seconds", "must be from 0 to retry_max_seconds"
            )
        self._service = service
        self._transcriber = transcriber
        self._max_attempts = max_attempts
        self._lease_seconds = lease_seconds
        self._poll_interval = poll_interval
        self._retry_base = retry_base_seconds
        self._retry_max = retry_max_seconds
        self._rng = rng if rng is not None else random.Random()  # noqa: S311 - jitter, not secrets
        self._stop = threading.Event()
        self._watched: threading.Event | None = None

    @property
    def transcriber(self) -> Transcriber:
        """The transcriber this worker calls."""
        return self._transcriber

    # ------------------------------------------------------------------------- running

    def run_once(self, *, limit: int | None = None) -> int:
        """Settle up to ``limit`` recordings ready now (all of them by default); return how many.

        Returns early when :meth:`stop` was called (a signal, say), after the
        job in progress. Raises ``TranscriberConfigurationError`` or
        ``MissingDependencyError`` when the deployment is wrong (the recording
        at hand keeps waiting), and ``RepositoryUnavailableError`` when no work
        can be claimed because the database is unreachable.
        """
        if limit is not None and limit < 1:
            raise ValidationError.for_field("limit", "must be at least 1")
        return self._drain(limit, self._stop)

    def run(self, *, stop: threading.Event | None = None) -> None:
        """Work until ``stop`` is set (or :meth:`stop` is called), waiting when nothing is ready.

        The job in progress always finishes first. An unreachable database is
        waited out (logged at WARNING). Raises, after logging at ERROR, what
        :meth:`run_once` raises for a wrong deployment: the loop stops, and
        the recording at hand is not failed.
        """
        watched = stop if stop is not None else self._stop
        self._watched = watched
        _logger.info(
            "Transcription worker started (transcriber %s, lease %d s, max attempts %d)",
            self._transcriber.name,
            self._lease_seconds,
            self._max_attempts,
        )
        outages = 0
        try:
            while not self._stopping(watched):
                try:
                    taken = self._drain(None, watched)
                except UnavailableError as exc:
                    outages += 1
                    wait = min(
                        _MAX_OUTAGE_WAIT_SECONDS,
                        max(float(exc.retry_after), self._poll_interval * 2 ** (outages - 1)),
                    )
                    _logger.warning(
                        "Cannot claim work (%s); trying again in %.0f s", exc.error_code, wait
                    )
                    watched.wait(wait)
                    continue
                outages = 0
                if taken == 0:
                    watched.wait(self._poll_interval)
        finally:
            self._watched = None
        _logger.info("Transcription worker stopped")

    def stop(self) -> None:
        """Ask :meth:`run` (or :meth:`run_once`) to return once the job in progress is done."""
        self._stop.set()
        watched = self._watched
        if watched is not None:
            watched.set()

    def install_signal_handlers(
        self, signals: Iterable[signal.Signals] = (signal.SIGTERM, signal.SIGINT)
    ) -> threading.Event:
        """Make SIGTERM and SIGINT stop the worker after its current job; return the stop event.

        The first signal asks the worker to stop and puts the previous
        handlers back, so a second one acts as it did before (SIGTERM ends
        the process, Ctrl-C raises ``KeyboardInterrupt``). Call it from the
        main thread, as :func:`signal.signal` requires.
        """
        previous: dict[signal.Signals, signal._HANDLER] = {}

        def handle(signum: int, _frame: FrameType | None) -> None:
            for number, handler in previous.items():
                signal.signal(number, handler)
            # Setting an Event takes a lock the interrupted code may hold: do it from a thread.
            threading.Thread(
                target=self._stop_on_signal, args=(signum,), name="worker-stop", daemon=True
            ).start()

        for number in signals:
            previous[number] = signal.signal(number, handle)
        return self._stop

    def _stop_on_signal(self, signum: int) -> None:
        _logger.info(
            "%s received: stopping after the current recording", signal.Signals(signum).name
        )
        self.stop()

    def _stopping(self, watched: threading.Event) -> bool:
        return watched.is_set() or self._stop.is_set()

    def _drain(self, limit: int | None, watched: threading.Event) -> int:
        taken = 0
        while (limit is None or taken < limit) and not self._stopping(watched):
            claimed = self._service.claim_for_processing(limit=1, lease_seconds=self._lease_seconds)
            if not claimed:
                break
            taken += 1
            self._work(claimed[0])
        return taken

    # ---------------------------------------------------------------------------- a job

    def _work(self, claimed: Recording) -> None:
        """Take one claimed recording as far as it goes; raise only for a wrong deployment."""
        claim = claimed.lease_expires_at
        if claim is None:  # pragma: no cover - a claim always sets the lease
            return
        try:
            recording = self._service.begin_processing(claimed)
        except RecordingError as exc:
            # Lost, deleted or unreachable: its lease runs out and it is claimed again.
            _log_dropped(str(claimed.id), claimed.processing_attempts + 1, exc)
            return
        job = _Job(recording, claim, time.perf_counter())
        if claimed.status is RecordingStatus.PROCESSING and job.attempt > self._max_attempts:
            self._fail(
                job,
                f"abandoned: {job.attempt - 1} attempts did not finish "
                "(the worker stopped or its lease ran out)",
                "abandoned",
            )
            return
        try:
            audio, transcript = self._transcribe(job)
            self._service.record_transcript(
                job.recording.id,
                text=transcript.text,
                confidence=transcript.confidence,
                language=transcript.language,
                service=transcript.service,
                claim=job.claim,
            )
        except Exception as exc:  # noqa: BLE001 - every failure is classified and handled
            self._handle(job, exc)
            return
        _logger.info(
            "Recording %s transcribed (attempt %d, %.1f s of audio in %.2f s)",
            job.id,
            job.attempt,
            audio.duration_seconds,
            time.perf_counter() - job.started,
        )

    def _transcribe(self, job: _Job) -> tuple[AudioInfo, Transcript]:
        recording = job.recording
        size = recording.file_size_bytes
        if size is None:
            raise UploadVerificationError(
                "The recording has no verified size", reason="size_unknown"
            )
        storage = self._service.storage
        url = storage.object_url(recording.s3_key)
        source = TranscriptionInput.from_storage(
            storage,
            key=recording.s3_key,
            size=size,
            mime_type=recording.mime_type or _UNKNOWN_MIME_TYPE,
            recording_id=recording.id,
            attempt=job.attempt,
            s3_uri=url if url.startswith("s3://") else None,
        )
        audio = self._measure(job, source)
        transcript = self._transcriber.transcribe(attrs.evolve(source, audio=audio))
        return audio, transcript

    def _measure(self, job: _Job, source: TranscriptionInput) -> AudioInfo:
        """Decode the stored audio to measure it, unless an earlier attempt already did."""
        known = job.recording.audio
        if known is not None:
            return AudioInfo(
                format=known.format,
                codec=known.codec,
                duration_seconds=known.duration_seconds,
                sample_rate=known.sample_rate,
                channels=known.channels,
            )
        with source.open() as stream:
            info = inspect_audio(stream)
        facts = AudioFacts(
            format=info.format,
            codec=info.codec,
            duration_seconds=info.duration_seconds,
            sample_rate=info.sample_rate,
            channels=info.channels,
        )
        self._service.record_audio(job.recording.id, facts, claim=job.claim)
        return info

    # ------------------------------------------------------------------------ failures

    def _handle(self, job: _Job, exc: Exception) -> None:
        kind = _classify(exc)
        if kind is _Kind.DROP:
            _log_dropped(job.id, job.attempt, exc)
        elif kind is _Kind.PERMANENT:
            self._fail(job, _reason(exc), _describe(exc))
        elif kind is _Kind.CONFIGURATION:
            _logger.error(
                "Recording %s attempt %d: the transcriber is not usable (%s); "
                "the recording waits and the worker stops until the deployment is fixed",
                job.id,
                job.attempt,
                f"{type(exc).__name__}, {_describe(exc)}",
            )
            retry_after = exc.retry_after if isinstance(exc, TransientTranscriptionError) else None
            delay = self._jittered(self._retry_base, retry_after)
            self._defer(job, _reason(exc), _describe(exc), delay)
            raise exc
        elif job.attempt >= self._max_attempts:
            reason = f"gave up after {job.attempt} attempts: {_reason(exc)}"
            self._fail(job, reason, f"gave up: {_describe(exc)}")
        else:
            self._defer(job, _reason(exc), _describe(exc), self.retry_delay(job.attempt, exc))

    def retry_delay(self, attempt: int, error: BaseException | None = None) -> float:
        """Return the seconds to wait before retrying after ``error`` ended attempt ``attempt``.

        A ``TransientTranscriptionError`` with ``retry_after`` waits that long
        (stretched by up to 10 %); otherwise the exponential backoff with
        jitter, and never less than an ``UnavailableError``'s ``retry_after``.
        """
        backoff = min(self._retry_max, self._retry_base * 2.0 ** max(0, attempt - 1))
        if isinstance(error, TransientTranscriptionError):
            return self._jittered(backoff, error.retry_after)
        delay = self._jittered(backoff, None)
        if isinstance(error, UnavailableError):
            delay = max(delay, float(error.retry_after))
        return delay

    def _jittered(self, backoff: float, service_hint: float | None) -> float:
        if service_hint is not None and service_hint >= 0:
            return service_hint * (1 + _SERVICE_HINT_JITTER * self._rng.random())
        return backoff * (0.5 + 0.5 * self._rng.random())

    def _fail(self, job: _Job, reason: str, code: str) -> None:
        try:
            self._service.mark_failed(job.recording.id, error=reason, claim=job.claim)
        except RecordingError as exc:
            _log_dropped(job.id, job.attempt, exc)
            return
        _logger.warning("Recording %s failed on attempt %d: %s", job.id, job.attempt, code)

    def _defer(self, job: _Job, reason: str, code: str, delay: float) -> None:
        try:
            self._service.defer_processing(
                job.recording.id, error=reason, retry_in_seconds=delay, claim=job.claim
            )
        except RecordingError as exc:
            _log_dropped(job.id, job.attempt, exc)
            return
        _logger.warning(
            "Recording %s attempt %d of %d did not finish (%s); retrying in %.1f s",
            job.id,
            job.attempt,
            self._max_attempts,
            code,
            delay,
        )


def _classify(exc: Exception) -> _Kind:
    if isinstance(exc, InvalidStatusTransitionError | RecordingNotFoundError):
        return _Kind.DROP
    if isinstance(exc, TranscriberConfigurationError | MissingDependencyError):
        return _Kind.CONFIGURATION
    if isinstance(
        exc,
        AudioDecodeError | PermanentTranscriptionError | UploadVerificationError | ValidationError,
    ):
        return _Kind.PERMANENT
    # Transient errors, outages, storage refusals, and anything unexpected: retry, a few times.
    return _Kind.TRANSIENT


def _reason(exc: BaseException) -> str:
    """Return the failure reason to store: codes and the package's own message only."""
    if isinstance(exc, RecordingError):
        reason = exc.details.get("reason")
        code = exc.error_code if reason is None else f"{exc.error_code} ({reason})"
        return f"{code}: {exc.message}"
    # A foreign exception's message may quote anything (file names, content): keep its type.
    return f"unexpected {type(exc).__name__} at {_where(exc)}"


def _describe(exc: BaseException) -> str:
    """Return an error as a log line shows it: its code and reason, never its message."""
    if isinstance(exc, RecordingError):
        reason = exc.details.get("reason")
        return exc.error_code if reason is None else f"{exc.error_code} ({reason})"
    return f"unexpected {type(exc).__name__} at {_where(exc)}"


def _where(exc: BaseException) -> str:
    """Return where the innermost frame raised ``exc`` (a source line, not data)."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return "an unknown place"
    frame = frames[-1]
    return f"{PurePath(frame.filename).name}:{frame.lineno} in {frame.name}"


def _log_dropped(recording_id: str, attempt: int, exc: BaseException) -> None:
    if isinstance(exc, UnavailableError):
        _logger.warning(
            "Recording %s attempt %d: %s; it is taken again when its lease runs out",
            recording_id,
            attempt,
            _describe(exc),
        )
        return
    _logger.info(
        "Recording %s attempt %d: result dropped (%s): another worker holds it, or it was deleted",
        recording_id,
        attempt,
        _describe(exc),
    )
