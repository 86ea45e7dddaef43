"""The few file-system moves LocalStorage makes, each safe against links and races."""

from __future__ import annotations

import errno
import os
import stat
import traceback
from pathlib import Path
from typing import IO

__all__ = [
    "create_exclusive",
    "fsync_directory",
    "open_regular",
    "prune",
    "replace_into",
    "write_all",
]


def os_error_summary(exc: OSError) -> str:
    """Describe an OS error by its type, errno and frames: never its message.

    The message names the paths involved, and a key's path holds the user id,
    the appointment or visit id and the upload's time.
    """
    frames = "".join(traceback.format_tb(exc.__traceback__)).rstrip()
    return f"{type(exc).__name__} (errno {exc.errno})\n{frames}"


def create_exclusive(path: Path) -> IO[bytes]:
    """Create ``path`` (which must not exist), readable by the owner only, for writing."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags, 0o600)
    try:
        return os.fdopen(fd, "wb", buffering=0)
    except BaseException:
        os.close(fd)
        raise


def write_all(handle: IO[bytes], data: bytes | memoryview) -> None:
    """Write every byte of ``data`` to ``handle`` (an unbuffered file), or raise ``OSError``.

    An unbuffered ``write`` may take fewer bytes than given (a disk that is
    nearly full, a file size limit) and says so only by its result: the rest
    is written again, and a write that takes nothing raises instead of
    leaving a truncated file behind.
    """
    view = memoryview(data)
    while view:
        written = handle.write(view)
        if not written:
            raise OSError(errno.EIO, "the disk took none of the bytes written")
        view = view[written:]


def open_regular(path: Path) -> IO[bytes]:
    """Open ``path`` for reading, refusing symbolic links and anything but regular files."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if isinstance(exc, FileNotFoundError | NotADirectoryError):
            raise
        raise FileNotFoundError(str(path)) from exc
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise IsADirectoryError(str(path))
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def replace_into(source: Path, target: Path) -> None:
    """``os.replace`` that creates the target's directories (and retries a racing prune)."""
    for attempt in range(3):
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            source.replace(target)
        except FileNotFoundError:
            if attempt == 2 or not source.exists():
                raise
        else:
            return


def fsync_directory(directory: Path) -> None:
    """Flush a directory's entries (a rename into it) to disk; a no-op off POSIX."""
    if os.name != "posix":  # pragma: no cover - directories cannot be opened elsewhere
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def prune(directory: Path, base: Path) -> None:
    """Remove empty directories from ``directory`` up to, not including, ``base``."""
    while directory != base and directory.is_relative_to(base):
        try:
            directory.rmdir()
        except OSError:
            return
        directory = directory.parent
