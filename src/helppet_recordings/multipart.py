"""Planning the parts of a multipart upload: pure arithmetic, no I/O.

S3 takes an object of up to 10,000 parts; every part but the last must be at
least 5 MiB and no part may exceed 5 GiB. :func:`plan_parts` cuts an upload of
``size`` bytes into parts that all (but the last) have the same size, so a
client that knows ``part_size`` and a part number knows the byte range to
send, and storage can be told the exact length of every part in advance.
"""

from __future__ import annotations

from typing import Final, NamedTuple

import attrs

__all__ = [
    "MAX_PARTS",
    "MAX_PART_SIZE",
    "MIN_PART_SIZE",
    "PREFERRED_PART_SIZE",
    "PartPlan",
    "PlannedPart",
    "plan_parts",
]

MIB: Final = 1024 * 1024

MIN_PART_SIZE: Final = 5 * MIB
"""The smallest part S3 accepts, except for the last part of an upload."""

MAX_PART_SIZE: Final = 5 * 1024 * MIB
"""The largest part S3 accepts (5 GiB)."""

MAX_PARTS: Final = 10_000
"""The most parts one S3 multipart upload may have."""

PREFERRED_PART_SIZE: Final = 8 * MIB
"""The part size used whenever it keeps an upload within ``MAX_PARTS`` parts."""


class PlannedPart(NamedTuple):
    """One part of a plan: its 1-based number, its first byte's offset and its length."""

    part_number: int
    offset: int
    size: int


@attrs.frozen(kw_only=True)
class PartPlan:
    """How an upload is cut: every part but the last is exactly ``part_size`` bytes."""

    part_size: int
    parts: tuple[PlannedPart, ...]

    @property
    def size(self) -> int:
        """The upload's total size in bytes (the sum of the parts' sizes)."""
        return sum(part.size for part in self.parts)

    @classmethod
    def cut(cls, size: int, part_size: int) -> PartPlan:
        """Rebuild the plan of ``size`` bytes in parts of ``part_size`` (as ``plan_parts`` made it).

        Raises ``ValueError`` when either is below 1.
        """
        if size < 1 or part_size < 1:
            msg = f"size and part_size must be at least 1, not {size} and {part_size}"
            raise ValueError(msg)
        parts = tuple(
            PlannedPart(number, offset, min(part_size, size - offset))
            for number, offset in enumerate(range(0, size, part_size), start=1)
        )
        return cls(part_size=part_size, parts=parts)

    def part(self, part_number: int) -> PlannedPart:
        """Return part ``part_number`` (1-based); ``KeyError`` if the plan has no such part."""
        if not 1 <= part_number <= len(self.parts):
            raise KeyError(part_number)
        return self.parts[part_number - 1]


def plan_parts(
    size: int,
    *,
    min_part_size: int = MIN_PART_SIZE,
    max_parts: int = MAX_PARTS,
    preferred_part_size: int = PREFERRED_PART_SIZE,
) -> PartPlan:
    """Cut ``size`` bytes into at most ``max_parts`` equal parts (the last may be shorter).

    The part size is ``preferred_part_size``, raised to ``min_part_size`` if
    that is larger, and raised again (rounded up to a whole MiB, but never
    above the 5 GiB S3 allows) when the upload would otherwise need more than
    ``max_parts`` parts. An upload no larger than one part is a single part
    of exactly ``size`` bytes, so then ``part_size == size``, even below
    ``min_part_size``.

    Raises:
        ValueError: ``size`` is below 1 or more than ``max_parts`` parts of
            5 GiB could hold, or a limit is below 1.
    """
    if min_part_size < 1 or max_parts < 1 or preferred_part_size < 1:
        msg = "min_part_size, max_parts and preferred_part_size must be at least 1"
        raise ValueError(msg)
    if min_part_size > MAX_PART_SIZE:
        msg = f"min_part_size must be at most {MAX_PART_SIZE} bytes"
        raise ValueError(msg)
    if size < 1:
        msg = f"an upload must have at least 1 byte, not {size}"
        raise ValueError(msg)
    if size > max_parts * MAX_PART_SIZE:
        msg = (
            f"an upload of {size} bytes does not fit in {max_parts} parts "
            f"of at most {MAX_PART_SIZE} bytes"
        )
        raise ValueError(msg)
    part_size = min(max(preferred_part_size, min_part_size), MAX_PART_SIZE)
    if -(-size // part_size) > max_parts:
        needed = -(-size // max_parts)  # <= MAX_PART_SIZE, checked above
        part_size = min(-(-needed // MIB) * MIB, MAX_PART_SIZE)
    if size <= part_size:
        return PartPlan(part_size=size, parts=(PlannedPart(1, 0, size),))
    return PartPlan.cut(size, part_size)
