"""Retrying one HTTP exchange: which failures deserve another try, and how long to wait.

A request is retried on a connection failure or timeout, on an answer of
408, 429 or 5xx, and on a storage error document whose S3 code says the
failure is transient whatever its status (:data:`RETRYABLE_STORAGE_CODES`:
S3's ``400 RequestTimeout`` for a connection it found idle, its throttling
codes); never on another 4xx, which retrying cannot fix. The wait is
stamina's exponential backoff with jitter, unless the server said how long to
wait: a ``Retry-After`` header (seconds or an HTTP date), or the API's error
body's ``details.retry_after``. A request whose upload was abandoned (another
part failed for good) stops at once, in a wait as well: :class:`Aborted`.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import math
import threading
from collections.abc import Callable, Iterator
from typing import Final

import attrs
import httpx
import stamina

from helppet_recordings.client._errors import storage_error_code

__all__ = [
    "RETRYABLE_STATUSES",
    "RETRYABLE_STORAGE_CODES",
    "Aborted",
    "RetryPolicy",
    "RetryableResponseError",
    "is_retryable",
    "is_retryable_status",
    "retry_after",
    "retrying",
]

RETRYABLE_STATUSES: Final = frozenset({408, 429})
"""The 4xx statuses worth retrying (a request timeout, too many requests); every 5xx is too."""

RETRYABLE_STORAGE_CODES: Final = frozenset(
    {
        # Transient: S3 (and LocalStorage) found the connection idle, or a request still running.
        "RequestTimeout",
        "RequestTimeoutException",
        "PriorRequestNotComplete",
        # Throttling, whatever status it comes with.
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
    }
)
"""S3 error codes worth retrying whatever their status: those AWS SDKs retry as transient."""

_RETRYABLE_TRANSPORT: Final = (
    httpx.TimeoutException,
    httpx.NetworkError,
    httpx.RemoteProtocolError,
)


def is_retryable_status(status: int) -> bool:
    """Whether an answer with ``status`` may succeed when the request is sent again."""
    return status in RETRYABLE_STATUSES or status >= 500


def is_retryable(response: httpx.Response) -> bool:
    """Whether ``response`` may succeed when the request is sent again.

    Its status says so (408, 429, 5xx), or its S3 error document's code is
    one of :data:`RETRYABLE_STORAGE_CODES` (``400 RequestTimeout``).
    """
    if is_retryable_status(response.status_code):
        return True
    return response.status_code >= 400 and storage_error_code(response) in RETRYABLE_STORAGE_CODES


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """How hard one request is retried before its failure is raised.

    ``attempts`` counts the first try; ``timeout`` bounds the seconds spent
    retrying one request; the waits grow from ``wait_initial`` by
    ``wait_exp_base`` up to ``wait_max``, plus up to ``wait_jitter`` seconds
    of random jitter. A delay the server asks for is used as it is, up to
    ``max_retry_after`` seconds.
    """

    attempts: int = attrs.field(default=10, validator=attrs.validators.ge(1))
    timeout: float = attrs.field(default=600.0, validator=attrs.validators.gt(0))
    wait_initial: float = attrs.field(default=0.5, validator=attrs.validators.ge(0))
    wait_max: float = attrs.field(default=30.0, validator=attrs.validators.ge(0))
    wait_jitter: float = attrs.field(default=1.0, validator=attrs.validators.ge(0))
    wait_exp_base: float = attrs.field(default=2.0, validator=attrs.validators.ge(1))
    max_retry_after: float = attrs.field(default=300.0, validator=attrs.validators.ge(0))


class RetryableResponseError(Exception):
    """An answer worth retrying (:func:`is_retryable`), with the delay the server asked for."""

    def __init__(self, response: httpx.Response, delay: float | None) -> None:
        self.response = response
        self.delay = delay
        # The message names the status only: a URL may carry a signature.
        super().__init__(f"HTTP {response.status_code}")


class Aborted(Exception):  # noqa: N818 - it is a decision of ours, not a failure
    """The request was given up because its upload was abandoned (another part failed).

    Raised in place of an attempt, a renewal or a chunk of a part's body once
    the upload's abort signal is set; never retried, never raised to callers.
    """


def check_abort(abort: threading.Event | None) -> None:
    """Raise :class:`Aborted` if ``abort`` is set."""
    if abort is not None and abort.is_set():
        raise Aborted


def retry_after(response: httpx.Response, *, now: dt.datetime | None = None) -> float | None:
    """Return the seconds ``response`` asks the client to wait, or None when it does not say.

    ``Retry-After`` may be a number of seconds or an HTTP date (relative to
    ``now``, default the current time); without it, the API's error body may
    carry ``details.retry_after``. A date in the past means "now" (0).
    """
    header = response.headers.get("Retry-After")
    if header is not None:
        seconds = _header_seconds(header.strip(), now or dt.datetime.now(dt.UTC))
        if seconds is not None:
            return seconds
    return _body_seconds(response)


def _header_seconds(value: str, now: dt.datetime) -> float | None:
    if value.isascii() and value.isdigit():  # str.isdigit also takes "²" and other digits
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # an HTTP date is always GMT
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - now).total_seconds())


def _body_seconds(response: httpx.Response) -> float | None:
    if "json" not in response.headers.get("Content-Type", ""):
        return None
    try:
        body = json.loads(response.content)
    except ValueError:
        return None
    details = body.get("details") if isinstance(body, dict) else None
    value = details.get("retry_after") if isinstance(details, dict) else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) and value >= 0 else None


def _backoff_hook(policy: RetryPolicy) -> Callable[[Exception], bool | float]:
    """Tell stamina whether to retry ``exc``, and how long to wait when the server said so."""

    def hook(exc: Exception) -> bool | float:
        if isinstance(exc, RetryableResponseError):
            if exc.delay is None:
                return True
            return min(exc.delay, policy.max_retry_after)
        return isinstance(exc, _RETRYABLE_TRANSPORT)

    return hook


def retrying(
    policy: RetryPolicy, *, abort: threading.Event | None = None
) -> Iterator[stamina.Attempt]:
    """Yield stamina attempts for one request under ``policy`` (``with attempt: ...``).

    With ``abort``, a wait between two attempts ends as soon as it is set;
    the caller checks it at the start of each attempt (:func:`check_abort`).
    """
    context = stamina.retry_context(
        on=_backoff_hook(policy),
        attempts=policy.attempts,
        timeout=policy.timeout,
        wait_initial=policy.wait_initial,
        wait_max=policy.wait_max,
        wait_jitter=policy.wait_jitter,
        wait_exp_base=policy.wait_exp_base,
    )
    if abort is not None:
        _wait_with(context, abort)
    return iter(context)


def _wait_with(context: object, abort: threading.Event) -> None:
    """Make ``context`` wait between attempts with ``abort.wait`` instead of ``time.sleep``.

    stamina takes no sleep function of its own: it builds tenacity's
    ``Retrying`` from the keyword arguments it keeps in ``_t_kw`` (stamina
    24.3 to 26.1), where tenacity takes one as ``sleep``. Should a stamina
    keep them elsewhere, its waits stay ``time.sleep`` and an abort is seen
    at the next attempt (``test_a_wait_between_attempts_ends_on_abort``
    says so).
    """
    tenacity_kwargs = getattr(context, "_t_kw", None)
    if isinstance(tenacity_kwargs, dict):
        tenacity_kwargs["sleep"] = abort.wait
