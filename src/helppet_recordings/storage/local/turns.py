"""The commit lock of a root: commits, promotes and deletes under one root take turns.

A lock per root in the process, then ``flock`` on the root's staging
directory across processes (several uvicorn workers on one root). A
filesystem without directory locks (some network mounts) keeps the process
lock only; that is all a single process ever needs.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

from helppet_recordings.storage.local.keys import Layout

if sys.platform != "win32":
    import fcntl

__all__ = ["commit_turn"]

_process_locks: dict[Path, threading.Lock] = {}
_process_locks_guard = threading.Lock()


@contextlib.contextmanager
def commit_turn(layout: Layout) -> Iterator[None]:
    """Hold ``layout``'s root's commit lock: in the process, then across processes."""
    with _process_lock(layout.root):
        if sys.platform == "win32":  # pragma: no cover - no flock: the process lock only
            yield
            return
        fd = os.open(layout.staging, os.O_RDONLY)
        try:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the flock


def _process_lock(root: Path) -> threading.Lock:
    """Return the one lock of ``root`` in this process, whichever LocalStorage uses it."""
    with _process_locks_guard:
        return _process_locks.setdefault(root, threading.Lock())
