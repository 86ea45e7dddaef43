"""What the transcription worker makes of an error: its kind, the reason kept, the wait."""

from __future__ import annotations

import enum
import logging
import math
import random
import traceback
from pathlib import PurePath
from typing import Final

import attrs

from helppet_recordings.audio.errors import AudioDecodeError
from helppet_recordings.errors import (
    InvalidStatusTransitionError,
    MissingDependencyError,
    RecordingError,
    RecordingNotFoundError,
    UnavailableError,
    UploadVerificationError,
    ValidationError,
)
from helppet_recordings.transcription.errors import (
    PermanentTranscriptionError,
    TranscriberConfigurationError,
    TransientTranscriptionError,
)

__all__ = ["Backoff", "Kind", "classify", "describe", "failure_reason", "log_dropped", "logger"]

logger: Final = logging.getLogger("helppet_recordings.worker")
MAX_RETRY_SECONDS: Final = 7 * 24 * 3600.0
"""The longest wait before a retry the worker may be configured with."""
"""The worker's logger: recording ids, attempts, durations and error codes only."""

_SERVICE_HINT_JITTER: Final = 0.1  # a service's Retry-After is stretched by up to 10 %


class Kind(enum.Enum):
    """What a failed job means for its recording."""

    DROP = "drop"  # another worker holds it, or it is gone: leave it alone
    PERMANENT = "permanent"  # this audio will never transcribe: fail it
    TRANSIENT = "transient"  # try again later, up to max_attempts
    CONFIGURATION = "configuration"  # the deployment is wrong: keep it waiting, stop


def classify(exc: Exception) -> Kind:
    """Return what ``exc``, raised while working on a recording, means for it."""
    if isinstance(exc, InvalidStatusTransitionError | RecordingNotFoundError):
        return Kind.DROP
    if isinstance(exc, TranscriberConfigurationError | MissingDependencyError):
        return Kind.CONFIGURATION
    if isinstance(
        exc,
        AudioDecodeError | PermanentTranscriptionError | UploadVerificationError | ValidationError,
    ):
        return Kind.PERMANENT
    # Transient errors, outages, storage refusals, and anything unexpected: retry, a few times.
    return Kind.TRANSIENT


def failure_reason(exc: BaseException) -> str:
    """Return the failure reason to store: codes and the package's own message only."""
    if isinstance(exc, RecordingError):
        return f"{describe(exc)}: {exc.message}"
    # A foreign exception's message may quote anything (file names, content): keep its type.
    return describe(exc)


def describe(exc: BaseException) -> str:
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


@attrs.frozen
class Backoff:
    """The wait before a retry: exponential with jitter, or what the service asked for.

    ``base`` is from 0 to ``maximum``, and ``maximum`` at most 7 days
    (``ValidationError`` naming ``retry_base_seconds`` or ``retry_max_seconds``,
    the worker's options).
    """

    base: float
    maximum: float
    rng: random.Random

    def __attrs_post_init__(self) -> None:
        if not 0 <= self.base <= self.maximum:
            raise ValidationError.for_field(
                "retry_base_seconds", "must be from 0 to retry_max_seconds"
            )
        if not self.maximum <= MAX_RETRY_SECONDS:
            raise ValidationError.for_field(
                "retry_max_seconds", f"must be at most {MAX_RETRY_SECONDS:.0f} (7 days)"
            )

    def delay(self, attempt: int, error: BaseException | None = None) -> float:
        """Return the seconds to wait after ``error`` ended attempt ``attempt``.

        A ``TransientTranscriptionError`` with ``retry_after`` waits that long
        (stretched by up to 10 %); otherwise ``base * 2 ** (attempt - 1)``,
        capped at ``maximum``, times a random 0.5 to 1, and never less than an
        ``UnavailableError``'s ``retry_after``.
        """
        backoff = min(self.maximum, self.base * 2.0 ** max(0, attempt - 1))
        if isinstance(error, TransientTranscriptionError):
            return self.jittered(backoff, error.retry_after)
        delay = self.jittered(backoff, None)
        if isinstance(error, UnavailableError):
            delay = max(delay, min(float(error.retry_after), self.maximum))
        return delay

    def jittered(self, backoff: float, service_hint: float | None) -> float:
        """Return the service's wait when it gave one (at most ``maximum``), else ``backoff``.

        Either with jitter. A wait that is not a finite number counts as none.
        """
        if service_hint is not None and math.isfinite(service_hint) and service_hint >= 0:
            wait = min(service_hint, self.maximum)
            return wait * (1 + _SERVICE_HINT_JITTER * self.rng.random())
        return backoff * (0.5 + 0.5 * self.rng.random())


def log_dropped(recording_id: str, attempt: int, exc: BaseException) -> None:
    """Log a job given up without a write: lost, deleted (INFO) or unreachable (WARNING)."""
    if isinstance(exc, UnavailableError):
        logger.warning(
            "Recording %s attempt %d: %s; it is taken again when its lease runs out",
            recording_id,
            attempt,
            describe(exc),
        )
        return
    logger.info(
        "Recording %s attempt %d: result dropped (%s): another worker holds it, or it was deleted",
        recording_id,
        attempt,
        describe(exc),
    )
