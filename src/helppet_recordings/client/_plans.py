"""The part plans the API answers, checked before a byte is read or sent for them.

Part ``n`` is the file's bytes from ``(n - 1) * part_size``: every part but
the last is ``part_size`` bytes, the last what remains. A plan that does not
cut this file that way (a part size below 1 byte, a part number outside 1 to
the part count, at most 10,000, a part whose size is not its planned size, a
part listed twice), or a renewal that answers for another recording or with
another part size, would read the wrong bytes or none: it is refused with a
:class:`~helppet_recordings.errors.RecordingError`, as the server answered
something this client cannot use. The wire models stay as loose as they are:
they are the server's too.
"""

from __future__ import annotations

import uuid
from typing import Any

from helppet_recordings.errors import RecordingError
from helppet_recordings.multipart import MAX_PARTS
from helppet_recordings.schemas import MultipartUploadResponse

__all__ = ["checked_plan", "part_count", "planned_size"]


def part_count(file_size: int, part_size: int) -> int:
    """Return how many parts of ``part_size`` bytes cut ``file_size`` bytes (0 for no size)."""
    return -(-file_size // part_size) if part_size > 0 else 0


def planned_size(file_size: int, part_size: int, part_number: int) -> int:
    """Return the size of part ``part_number`` of the plan (0 for a part it does not have)."""
    if not 1 <= part_number <= part_count(file_size, part_size):
        return 0
    return min(part_size, file_size - (part_number - 1) * part_size)


def checked_plan(
    answer: MultipartUploadResponse,
    file_size: int,
    *,
    recording_id: uuid.UUID | None = None,
    part_size: int | None = None,
) -> MultipartUploadResponse:
    """Return ``answer`` if it plans ``file_size`` bytes as parts this client can send.

    ``recording_id`` and ``part_size``, when given, are what an earlier
    answer for the same upload said; a renewal must say the same.
    """
    if recording_id is not None and answer.recording_id != recording_id:
        raise _unusable(answer, "recording_id")
    if answer.part_size < 1 or (part_size is not None and answer.part_size != part_size):
        raise _unusable(answer, "part_size")
    if part_count(file_size, answer.part_size) > MAX_PARTS:
        raise _unusable(answer, "part_size")
    seen: set[int] = set()
    for part in answer.parts:
        number = part.part_number
        if number in seen or planned_size(file_size, answer.part_size, number) < 1:
            raise _unusable(answer, "part_number", part_number=number)
        if part.size != planned_size(file_size, answer.part_size, number):
            raise _unusable(answer, "size", part_number=number)
        seen.add(number)
    return answer


def _unusable(answer: MultipartUploadResponse, reason: str, **details: Any) -> RecordingError:
    # The answer's values are not quoted beyond the numbers: its URLs carry signatures.
    return RecordingError(
        "The server's part plan does not fit the file",
        recording_id=str(answer.recording_id),
        part_size=answer.part_size,
        reason=reason,
        **details,
    )
