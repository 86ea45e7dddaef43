"""``Watch``: threads that keep looking for something while a block of a test runs."""

from __future__ import annotations

import threading
from collections.abc import Callable

__all__ = ["Watch"]


class Watch:
    """Two threads that call ``look`` (True: found) until the ``with`` block ends.

    The block starts once both have looked at least once, so they watch the
    whole of it; :attr:`misses` counts the looks that found nothing. An
    error in a thread is raised when the block ends.
    """

    def __init__(self, look: Callable[[], bool]) -> None:
        self.looks = self.misses = 0
        self._look = look
        self._errors: list[Exception] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ready = threading.Barrier(3, timeout=10)
        self._threads = [threading.Thread(target=self._watch, daemon=True) for _ in range(2)]

    def __enter__(self) -> Watch:
        for thread in self._threads:
            thread.start()
        self._ready.wait()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)
        if self._errors:
            raise self._errors[0]

    def _watch(self) -> None:
        try:
            self._count()
            self._ready.wait()
            while not self._stop.is_set():
                self._count()
        except Exception as exc:  # noqa: BLE001 - raised in the test's thread when the block ends
            self._errors.append(exc)
            self._ready.abort()

    def _count(self) -> None:
        found = self._look()
        with self._lock:
            self.looks += 1
            self.misses += not found
