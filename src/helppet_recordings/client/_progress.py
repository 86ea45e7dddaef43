"""Progress of one upload, reported monotonically from several sending threads.

Each part (a POST upload is one part) counts the bytes handed to the socket
in its current attempt; the upload's progress is the sum over parts of the
most any attempt of that part reached. A retried part therefore never moves
the total back, nor counts its bytes twice.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping

__all__ = ["ProgressCallback", "ProgressTracker"]

ProgressCallback = Callable[[int, int], None]
"""``progress(sent_bytes, total_bytes)``: called from the sending threads, never concurrently."""


class ProgressTracker:
    """Sums the progress of an upload's parts and reports each increase to a callback."""

    def __init__(self, total: int, callback: ProgressCallback | None) -> None:
        self.total = total
        self._callback = callback
        self._lock = threading.Lock()
        self._best: dict[int, int] = {}
        self._current: dict[int, int] = {}
        self._reported = -1

    @property
    def sent(self) -> int:
        """Bytes counted so far."""
        with self._lock:
            return sum(self._best.values())

    def start_attempt(self, part: int) -> Callable[[int], None]:
        """Begin an attempt of ``part``; return the function its body calls with each chunk."""
        with self._lock:
            self._current[part] = 0

        def sent(count: int) -> None:
            with self._lock:
                self._current[part] = self._current.get(part, 0) + count
                if self._current[part] > self._best.get(part, 0):
                    self._best[part] = self._current[part]
                    self._report_locked()

        return sent

    def done(self, part: int, size: int) -> None:
        """Count ``part`` as fully held by storage (``size`` bytes)."""
        self.held({part: size})

    def held(self, sizes: Mapping[int, int]) -> None:
        """Count every part in ``sizes`` (number to bytes) as held, e.g. found there on resume."""
        with self._lock:
            self._best.update(sizes)
            self._report_locked()

    def report(self) -> None:
        """Report the current total (once per value)."""
        with self._lock:
            self._report_locked()

    def _report_locked(self) -> None:
        sent = min(sum(self._best.values()), self.total)
        if sent > self._reported and self._callback is not None:
            self._reported = sent
            self._callback(sent, self.total)
