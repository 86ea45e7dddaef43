"""How long a transcription service asked to wait, read from its answer's headers."""

from __future__ import annotations

import contextlib
import datetime as dt
import email.utils
import math
from collections.abc import Mapping
from typing import Final

__all__ = ["MAX_RETRY_AFTER", "retry_after_seconds"]

MAX_RETRY_AFTER: Final = 24 * 60 * 60.0
"""The longest wait taken from a service: anything longer is read as this."""


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """Read ``retry-after-ms`` (OpenAI's) or ``Retry-After`` (seconds or an HTTP date).

    Returns seconds from 0 to :data:`MAX_RETRY_AFTER`, or None when there is
    no such header or its value is no finite wait.
    """
    with contextlib.suppress(TypeError, ValueError):
        value = headers.get("retry-after-ms")
        if value is not None:
            return _bounded(float(value) / 1000)
    value = headers.get("retry-after")
    if value is None:
        return None
    with contextlib.suppress(ValueError):
        return _bounded(float(value))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return _bounded((when - dt.datetime.now(dt.UTC)).total_seconds())


def _bounded(seconds: float) -> float | None:
    if not math.isfinite(seconds):
        return None
    return min(max(0.0, seconds), MAX_RETRY_AFTER)
