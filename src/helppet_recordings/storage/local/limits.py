"""The upload receiver's limits, in one place (none of them needs python-multipart)."""

from __future__ import annotations

from typing import Final

__all__ = ["DEFAULT_BATCH_SIZE", "MAX_PRE_DATA_BYTES"]

DEFAULT_BATCH_SIZE: Final = 1024 * 1024
"""Bytes the async receiver gathers before handing them to a worker thread."""

MAX_PRE_DATA_BYTES: Final = 20 * 1024
"""Most bytes of part headers and fields accepted before the file (S3's limit)."""
