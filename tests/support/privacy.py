"""Personal values to plant in recordings, and everything an exception would show of them."""

from __future__ import annotations

import traceback
from typing import Final

ORIGINAL_FILENAME: Final = "Bello the beagle, 12 Oak Lane.m4a"
"""An original filename naming a pet and an address."""

METADATA_VALUE: Final = "Jane Roe, 12 Oak Lane"
"""A recording_metadata value naming the owner and the address."""

TRANSCRIPT: Final = "Bello the beagle lives at 12 Oak Lane with Jane Roe"
"""A transcript naming the pet, the owner and the address."""

MARKERS: Final = ("Bello", "Oak Lane", "Jane Roe")
"""Words of the values above; none may appear in what an error shows."""


def everything_shown(exc: BaseException) -> str:
    """Return all an exception can show: each chained exception's str, repr, args, details.

    Also the formatted traceback with its whole chain, as a log handler given
    ``exc_info`` writes it, and what a handler that reads attributes finds:
    every attribute (SQLAlchemy's ``params``, a driver's own) and every field
    of a PostgreSQL driver error's ``diag``.
    """
    parts = ["".join(traceback.format_exception(exc))]
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        parts += [str(current), repr(current), repr(current.args)]
        parts.append(repr(getattr(current, "details", None)))
        parts.append(repr(getattr(current, "__dict__", None)))
        diag = getattr(current, "diag", None)
        if diag is not None:
            parts += [repr(getattr(diag, name)) for name in dir(diag) if not name.startswith("_")]
        pending += [current.__cause__, current.__context__, getattr(current, "orig", None)]
    return "\n".join(parts)


def markers_in(text: str) -> list[str]:
    """Return the markers of personal values found in ``text``."""
    return [marker for marker in MARKERS if marker in text]
