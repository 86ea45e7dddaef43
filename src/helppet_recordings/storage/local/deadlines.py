"""How long a client may take to send a body: the receive deadlines of one request."""

from __future__ import annotations

import time

from helppet_recordings.storage.local.refusal import LocalStorageRefusal

__all__ = ["ReceiveClock", "request_timeout"]


class ReceiveClock:
    """The three receive deadlines of one upload, on the monotonic clock."""

    def __init__(self, idle: float | None, fields: float | None, body: float | None) -> None:
        now = time.monotonic()
        self._idle = idle
        self._fields_deadline = None if fields is None else now + fields
        self._body_deadline = None if body is None else now + body
        self._last = now

    def wait_limit(self, *, file_started: bool) -> float | None:
        """Return how long the next chunk may take to arrive (None: no limit, <= 0: none)."""
        now = time.monotonic()
        limits = [self._idle]
        if self._body_deadline is not None:
            limits.append(self._body_deadline - now)
        if self._fields_deadline is not None and not file_started:
            limits.append(self._fields_deadline - now)
        present = [limit for limit in limits if limit is not None]
        return min(present) if present else None

    def check(self, *, file_started: bool) -> None:
        """Refuse with ``RequestTimeout`` if the chunk that just arrived came too late."""
        now = time.monotonic()
        if (
            (self._idle is not None and now - self._last > self._idle)
            or (self._body_deadline is not None and now > self._body_deadline)
            or (
                self._fields_deadline is not None
                and not file_started
                and now > self._fields_deadline
            )
        ):
            raise request_timeout()

    def fed(self) -> None:
        """Note that a chunk was dealt with: the client's idle time starts now."""
        self._last = time.monotonic()


def request_timeout() -> LocalStorageRefusal:
    """400 ``RequestTimeout``: the client took too long (S3's code and message)."""
    return LocalStorageRefusal(
        400,
        "RequestTimeout",
        "Your socket connection to the server was not read from or written to "
        "within the timeout period. Idle connections will be closed.",
    )
