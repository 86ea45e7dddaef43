"""TranscriptionWorker: takes verified uploads, measures their audio and stores their transcripts.

::

    worker = TranscriptionWorker(service, get_transcriber("local"))
    worker.run_once()                         # everything waiting now, then return
    worker.install_signal_handlers()          # SIGTERM / Ctrl-C: finish the current job, stop
    worker.run()                              # until stopped

One recording at a time, the worker claims it (a lease of ``lease_seconds``
that other workers respect), starts it (the attempt is counted), measures it
by decoding it from storage in ranged reads, transcribes it and stores the
transcript, each write carrying the claim. Only the verified object is ever
transcribed (``_verified``: pinned reads, and a ``head`` before and after the
transcriber); otherwise the recording is ``failed``
(``UPLOAD_VERIFICATION_FAILED``, reason ``object_changed`` or
``object_missing``). Audio that never decodes and refusals are ``failed`` at
once; transient errors are retried after a backoff with jitter, up to
``max_attempts``; a wrong deployment keeps the recording waiting and stops
the worker; a result whose claim was lost (another worker took over after the
lease ran out) is dropped. A recording abandoned by dead workers more than
``max_attempts`` times is ``failed``, not tried forever.
``docs/transcription.md`` has the full table.

Any number of workers may run at once, in threads (one worker each),
processes or hosts: claims are atomic in the repository. Logs go to the
``helppet_recordings.worker`` logger and carry recording ids, attempts,
durations and error codes: never transcript text, file names or keys.
"""

from __future__ import annotations

import random
import signal
import threading
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Final

import attrs

from helppet_recordings.audio.probe import AudioInfo, inspect_audio
from helppet_recordings.errors import RecordingError, UnavailableError, ValidationError
from helppet_recordings.models import AudioFacts, Recording
from helppet_recordings.policy import storable_text
from helppet_recordings.service.inputs import check_lease, check_positive, check_wait
from helppet_recordings.status import RecordingStatus
from helppet_recordings.transcription._failures import (
    Backoff,
    Kind,
    classify,
    describe,
    failure_reason,
    log_dropped,
)
from helppet_recordings.transcription._failures import logger as _logger
from helppet_recordings.transcription._lease import HeldClaim, Job, keep_claimed
from helppet_recordings.transcription._signals import stop_on_signals
from helppet_recordings.transcription._verified import transcribe_verified, verified_input
from helppet_recordings.transcription.base import Transcriber, Transcript, TranscriptionInput
from helppet_recordings.transcription.errors import TransientTranscriptionError

if TYPE_CHECKING:
    from helppet_recordings.service import RecordingService

__all__ = ["TranscriptionWorker"]

_MAX_OUTAGE_WAIT_SECONDS: Final = 60.0


class TranscriptionWorker:
    """Settles uploaded recordings: each ends ``transcribed`` or ``failed``, or waits for a retry.

    ``service`` is the :class:`~helppet_recordings.RecordingService` whose
    storage holds the audio; ``transcriber`` any :class:`Transcriber`.

    - ``max_attempts``: attempts a recording gets (transient errors, lost
      workers) before it is marked ``failed``.
    - ``lease_seconds``: how long a claim holds a recording without news from
      its worker; while a job runs the worker renews its claim every third of
      it, so only a worker that died (or lost the database for a whole lease)
      has its recording taken over.
    - ``poll_interval``: seconds :meth:`run` waits when nothing is ready.
    - ``retry_base_seconds`` / ``retry_max_seconds``: the wait after a
      transient error is ``retry_base_seconds * 2 ** (attempt - 1)``, capped at
      ``retry_max_seconds``, with jitter (a random 50 to 100 % of it), so that
      recordings that failed together do not come back together. When the
      transcription service said how long to wait (``retry_after``), that wait
      is used instead, up to ``retry_max_seconds`` (at most 7 days).
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
        check_positive(max_attempts, "max_attempts")
        check_lease(lease_seconds, "lease_seconds")  # what claim_for_processing accepts
        if check_wait(poll_interval, "poll_interval") == 0:
            raise ValidationError.for_field("poll_interval", "must be positive")
        check_wait(retry_base_seconds, "retry_base_seconds")
        check_wait(retry_max_seconds, "retry_max_seconds")
        self._service = service
        self._transcriber = transcriber
        self._max_attempts = max_attempts
        self._lease_seconds = lease_seconds
        self._poll_interval = poll_interval
        self._backoff = Backoff(
            retry_base_seconds,
            retry_max_seconds,
            rng if rng is not None else random.Random(),  # noqa: S311 - jitter, not secrets
        )
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
        can be claimed because the database is unreachable. ``limit`` must be
        a positive integer (``VALIDATION_ERROR`` otherwise, booleans included).
        """
        if limit is not None:
            check_positive(limit, "limit")
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
        stop_on_signals(self.stop, signals)
        return self._stop

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
            log_dropped(str(claimed.id), claimed.processing_attempts + 1, exc)
            return
        job = Job(recording, HeldClaim(claim), time.perf_counter())
        if claimed.status is RecordingStatus.PROCESSING and job.attempt > self._max_attempts:
            self._fail(
                job,
                f"abandoned: {job.attempt - 1} attempts did not finish "
                "(the worker stopped or its lease ran out)",
                "abandoned",
            )
            return
        with keep_claimed(self._service, job.recording, job.claim, self._lease_seconds):
            try:
                audio, transcript = self._transcribe(job)
                with job.claim.held() as held:
                    self._service.record_transcript(
                        job.recording.id,
                        text=storable_text(transcript.text),
                        confidence=transcript.confidence,
                        language=transcript.language,
                        service=transcript.service,
                        claim=held,
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

    def _transcribe(self, job: Job) -> tuple[AudioInfo, Transcript]:
        storage = self._service.storage
        source = verified_input(storage, job.recording, attempt=job.attempt)
        audio = self._measure(job, source)
        transcript, seconds = transcribe_verified(
            storage,
            job.recording,
            self._transcriber,
            attrs.evolve(source, audio=audio),
            ended=job.transcriber_ended,
            rng=self._backoff.rng,
        )
        self._timed(seconds, "transcribed")
        return audio, transcript

    def _timed(self, seconds: float, outcome: str) -> None:
        """Record the transcriber's time (``transcription.duration``) with what came of it."""
        self._service.metrics.transcription_finished(
            seconds, service=self._transcriber.name, outcome=outcome
        )

    def _measure(self, job: Job, source: TranscriptionInput) -> AudioInfo:
        """Decode the stored audio to measure it, unless an earlier attempt already did."""
        known = job.recording.audio  # the domain twin of AudioInfo: the same fields
        if known is not None:
            return AudioInfo(**attrs.asdict(known))
        with source.open() as stream:
            info = inspect_audio(stream)
        with job.claim.held() as held:
            self._service.record_audio(job.recording.id, AudioFacts(**info.to_dict()), claim=held)
        return info

    # ------------------------------------------------------------------------ failures

    def _handle(self, job: Job, exc: Exception) -> None:
        kind = classify(exc)
        if job.transcriber_seconds is not None:
            fails = kind is Kind.PERMANENT or (
                kind is Kind.TRANSIENT and job.attempt >= self._max_attempts
            )
            outcome = "dropped" if kind is Kind.DROP else "failed" if fails else "deferred"
            self._timed(job.transcriber_seconds, outcome)
        if kind is Kind.DROP:
            log_dropped(job.id, job.attempt, exc)
        elif kind is Kind.PERMANENT:
            self._fail(job, failure_reason(exc), describe(exc))
        elif kind is Kind.CONFIGURATION:
            _logger.error(
                "Recording %s attempt %d: the transcriber is not usable (%s); "
                "the recording waits and the worker stops until the deployment is fixed",
                job.id,
                job.attempt,
                f"{type(exc).__name__}, {describe(exc)}",
            )
            retry_after = exc.retry_after if isinstance(exc, TransientTranscriptionError) else None
            delay = self._backoff.jittered(self._backoff.base, retry_after)
            self._defer(job, failure_reason(exc), describe(exc), delay)
            raise exc
        elif job.attempt >= self._max_attempts:
            reason = f"gave up after {job.attempt} attempts: {failure_reason(exc)}"
            self._fail(job, reason, f"gave up: {describe(exc)}")
        else:
            delay = self._backoff.delay(job.attempt, exc)
            self._defer(job, failure_reason(exc), describe(exc), delay)

    def retry_delay(self, attempt: int, error: BaseException | None = None) -> float:
        """Return the seconds to wait before retrying after ``error`` ended attempt ``attempt``.

        A ``TransientTranscriptionError`` with ``retry_after`` waits that long
        (stretched by up to 10 %); otherwise the exponential backoff with
        jitter, and never less than an ``UnavailableError``'s ``retry_after``.
        """
        return self._backoff.delay(attempt, error)

    def _fail(self, job: Job, reason: str, code: str) -> None:
        try:
            with job.claim.held() as held:
                self._service.mark_failed(job.recording.id, error=reason, claim=held)
        except RecordingError as exc:
            log_dropped(job.id, job.attempt, exc)
            return
        _logger.warning("Recording %s failed on attempt %d: %s", job.id, job.attempt, code)

    def _defer(self, job: Job, reason: str, code: str, delay: float) -> None:
        try:
            with job.claim.held() as held:
                self._service.defer_processing(
                    job.recording.id, error=reason, retry_in_seconds=delay, claim=held
                )
        except RecordingError as exc:
            log_dropped(job.id, job.attempt, exc)
            return
        _logger.warning(
            "Recording %s attempt %d of %d did not finish (%s); retrying in %.1f s",
            job.id,
            job.attempt,
            self._max_attempts,
            code,
            delay,
        )
