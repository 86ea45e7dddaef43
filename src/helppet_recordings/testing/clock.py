"""A clock tests can move."""

from __future__ import annotations

import datetime as dt

from helppet_recordings.testing.factories import BASE_TIME


class FakeClock:
    """Returns a fixed, timezone-aware time until advanced."""

    def __init__(self, start: dt.datetime = BASE_TIME) -> None:
        self.now = start

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> dt.datetime:
        """Move the clock forward by ``timedelta(**delta)`` and return the new time."""
        self.now += dt.timedelta(**delta)
        return self.now
