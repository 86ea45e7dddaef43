"""Stopping a worker on SIGTERM or Ctrl-C, after its current job."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterable
from types import FrameType

from helppet_recordings.transcription._failures import logger

__all__ = ["stop_on_signals"]


def stop_on_signals(stop: Callable[[], None], signals: Iterable[signal.Signals]) -> None:
    """Make the first of ``signals`` call ``stop`` and put the previous handlers back.

    A second signal then acts as it did before (SIGTERM ends the process,
    Ctrl-C raises ``KeyboardInterrupt``). Call it from the main thread, as
    :func:`signal.signal` requires.
    """
    previous: dict[signal.Signals, signal._HANDLER] = {}

    def handle(signum: int, _frame: FrameType | None) -> None:
        for number, handler in previous.items():
            signal.signal(number, handler)
        # Setting an Event takes a lock the interrupted code may hold: do it from a thread.
        threading.Thread(
            target=_stop_on, args=(stop, signum), name="worker-stop", daemon=True
        ).start()

    for number in signals:
        previous[number] = signal.signal(number, handle)


def _stop_on(stop: Callable[[], None], signum: int) -> None:
    logger.info("%s received: stopping after the current recording", signal.Signals(signum).name)
    stop()
