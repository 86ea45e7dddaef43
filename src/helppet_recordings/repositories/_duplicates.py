"""The one shape of a duplicate, shared by every repository backend."""

from __future__ import annotations

from typing import Final, Literal

from helppet_recordings.errors import DuplicateRecordingError

__all__ = ["DuplicateField", "duplicate_recording"]

DuplicateField = Literal["id", "s3_key", "idempotency_key"]
"""Which unique value of a recording was already taken."""

_MESSAGES: Final[dict[str, str]] = {
    "id": "a recording with this id already exists",
    "s3_key": "a recording with this storage key already exists",
    "idempotency_key": "this idempotency key already exists for this user",
}


def duplicate_recording(field: DuplicateField) -> DuplicateRecordingError:
    """Return the error for a recording whose ``field`` is already used.

    ``details["field"]`` names the field; neither message nor details carry
    the value (a key or a client's idempotency key).
    """
    return DuplicateRecordingError(_MESSAGES[field], field=field)
