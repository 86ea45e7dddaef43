"""A worker's job and its claim on the recording, renewed in the background while the job runs.

A transcription can outlast any fixed lease (an hour of audio on a CPU takes
longer than an hour). :func:`renewing` extends the claim every third of the
lease, so no other worker takes the recording over while this one is alive;
writes take the claim through :meth:`HeldClaim.held`, which a renewal never
interleaves with, so a write never carries a claim that was just replaced.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import attrs

from helppet_recordings.errors import RecordingError, UnavailableError
from helppet_recordings.transcription._failures import logger as _logger

if TYPE_CHECKING:
    from helppet_recordings.models import Recording
    from helppet_recordings.service import RecordingService

__all__ = ["HeldClaim", "Job", "keep_claimed", "renewing"]

Extend = Callable[[dt.datetime], dt.datetime]
"""``extend(claim)``: renew ``claim`` in the repository and return the new one."""


class HeldClaim:
    """The current claim of one job; thread-safe."""

    def __init__(self, claim: dt.datetime) -> None:
        self._claim = claim
        self._lock = threading.Lock()

    @property
    def current(self) -> dt.datetime:
        """The claim as it stands now."""
        with self._lock:
            return self._claim

    @contextlib.contextmanager
    def held(self) -> Iterator[dt.datetime]:
        """Yield the claim for a write; no renewal happens until the write is done."""
        with self._lock:
            yield self._claim

    def renew(self, extend: Extend) -> None:
        """Replace the claim with what ``extend`` returns (errors propagate, claim unchanged)."""
        with self._lock:
            self._claim = extend(self._claim)


@attrs.define
class Job:
    """One claimed recording being worked on: the claim that every write carries."""

    recording: Recording
    claim: HeldClaim
    started: float
    transcriber_seconds: float | None = None
    """How long the transcriber took when it raised (its outcome is decided later)."""

    @property
    def id(self) -> str:
        """The recording's id, as the logs show it."""
        return str(self.recording.id)

    @property
    def attempt(self) -> int:
        """The attempt this job is (``processing_attempts``, counted when it started)."""
        return self.recording.processing_attempts

    def transcriber_ended(self, seconds: float) -> None:
        """Keep how long the transcriber took, when its outcome is decided by an error."""
        self.transcriber_seconds = seconds


@contextlib.contextmanager
def renewing(
    claim: HeldClaim, extend: Extend, *, every: float, job: str, attempt: int
) -> Iterator[None]:
    """Renew ``claim`` every ``every`` seconds in a thread until the block ends.

    An outage skips a beat (the next one tries again); a lost claim stops
    the renewals (the job's result is then dropped at its write).
    """
    done = threading.Event()

    def beat() -> None:
        while not done.wait(every):
            try:
                claim.renew(extend)
            except UnavailableError:
                _logger.warning("Recording %s attempt %d: claim not renewed (outage)", job, attempt)
            except RecordingError as exc:
                _logger.warning(
                    "Recording %s attempt %d: claim lost while working (%s)",
                    job,
                    attempt,
                    exc.error_code,
                )
                return

    thread = threading.Thread(target=beat, name=f"claim-{job[:8]}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def keep_claimed(
    service: RecordingService, recording: Recording, claim: HeldClaim, lease_seconds: int
) -> contextlib.AbstractContextManager[None]:
    """Keep a worker's claim on ``recording`` alive while the block runs (every third of it)."""

    def extend(current: dt.datetime) -> dt.datetime:
        return service.extend_claim(recording.id, claim=current, lease_seconds=lease_seconds)

    return renewing(
        claim,
        extend,
        every=lease_seconds / 3,
        job=str(recording.id),
        attempt=recording.processing_attempts,
    )
