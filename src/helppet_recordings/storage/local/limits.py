"""The upload receiver's limits, in one place (none of them needs python-multipart)."""

from __future__ import annotations

from typing import Final

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_BODY_TIMEOUT",
    "DEFAULT_FIELDS_TIMEOUT",
    "DEFAULT_IDLE_TIMEOUT",
    "MAX_PRE_DATA_BYTES",
    "check_receiver_limits",
]

DEFAULT_BATCH_SIZE: Final = 1024 * 1024
"""Bytes of the file the async receiver gathers before handing them to a worker thread."""

MAX_PRE_DATA_BYTES: Final = 20 * 1024
"""Most body bytes accepted before the file's content begins (S3's limit for the fields).

Boundaries, part headers and fields all count. Until the file part begins
under a verified ticket the receiver parses every chunk at once and holds
nothing more, so this is also what a client without a valid ticket can make
it hold.
"""

DEFAULT_IDLE_TIMEOUT: Final = 30.0
"""Seconds a client may send nothing at all before its upload is refused."""

DEFAULT_FIELDS_TIMEOUT: Final = 15.0
"""Seconds from the start of the body until the file part must have begun under a valid ticket."""

DEFAULT_BODY_TIMEOUT: Final = 3600.0
"""Seconds the whole body may take (the default upload ticket lives as long)."""


def check_receiver_limits(batch_size: int, **timeouts: float | None) -> None:
    """Raise ``ValueError`` unless ``batch_size`` is positive and each timeout positive or None."""
    if batch_size < 1:
        msg = "batch_size must be a positive number of bytes"
        raise ValueError(msg)
    for name, value in timeouts.items():
        if value is not None and not value > 0:
            msg = f"{name} must be a positive number of seconds or None"
            raise ValueError(msg)
