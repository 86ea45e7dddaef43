"""Reading the file to upload: its identity, its content type, and byte ranges as streams.

Nothing here reads a whole file into memory: digests and request bodies go
through :data:`CHUNK_SIZE` bytes at a time, and a part's body is read from
its own file handle at its own offset, so parts can be sent in parallel.
Every read is checked against the file's identity at the start (size and
modification time): a file that changed is ``FILE_CHANGED``, never sent on.
So is a file the OS no longer lets be read (a directory now at its path,
``EACCES``, ``EIO``): ``details["reason"]`` ``unreadable``, with the OS
error's name, never the path.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO, Final

import attrs

from helppet_recordings import policy
from helppet_recordings.client._errors import FileChangedError
from helppet_recordings.client._retry import check_abort
from helppet_recordings.errors import UnsupportedContentTypeError, ValidationError

__all__ = [
    "CHUNK_SIZE",
    "CountingReader",
    "FileIdentity",
    "guess_content_type",
    "open_file",
    "read_range",
]

CHUNK_SIZE: Final = 256 * 1024
"""Bytes read (and handed to the socket) at a time."""


@attrs.frozen(kw_only=True)
class FileIdentity:
    """What tells one file's content from another's: size, modification time and SHA-256.

    The SHA-256 covers the whole file (hex); it also becomes the upload's
    ``content_sha256`` where the server can verify it.
    """

    size: int
    mtime_ns: int
    sha256: str

    @classmethod
    def of(cls, path: Path) -> FileIdentity:
        """Measure ``path``: one streaming pass for the digest.

        A path the OS cannot read as a file (none there, a directory, no
        permission) is ``VALIDATION_ERROR`` for ``path``, naming the OS
        error's class only: its message would name the path.
        """
        digest = hashlib.sha256()
        try:
            with path.open("rb") as handle:
                stat = os.fstat(handle.fileno())
                while chunk := handle.read(CHUNK_SIZE):
                    digest.update(chunk)
        except OSError as exc:
            problem = type(exc).__name__
        else:
            return cls(size=stat.st_size, mtime_ns=stat.st_mtime_ns, sha256=digest.hexdigest())
        raise ValidationError.for_field("path", "cannot be read as a file", os_error=problem)

    def check(self, stat: os.stat_result) -> None:
        """Raise ``FILE_CHANGED`` unless ``stat`` shows this size and modification time."""
        if stat.st_size != self.size:
            raise FileChangedError(
                "The file's size changed since the upload started", reason="size"
            )
        if stat.st_mtime_ns != self.mtime_ns:
            raise FileChangedError(
                "The file was modified since the upload started", reason="modified"
            )

    def check_path(self, path: Path) -> None:
        """Raise ``FILE_CHANGED`` unless ``path`` is still this file (also when it is gone)."""
        with _reading():
            stat = path.stat()
        self.check(stat)


def _removed() -> FileChangedError:
    return FileChangedError("The file was removed since the upload started", reason="missing")


@contextlib.contextmanager
def _reading() -> Iterator[None]:
    """Raise ``FILE_CHANGED`` for the OS refusing to stat, open or read the file.

    The OS error's message names the path (a patient's or a file's name, maybe):
    only its class goes on, and it is not chained.
    """
    try:
        yield
    except FileNotFoundError:
        raise _removed() from None
    except OSError as exc:
        raise FileChangedError(
            "The file could not be read since the upload started",
            reason="unreadable",
            os_error=type(exc).__name__,
        ) from None


def open_file(path: Path) -> BinaryIO:
    """Open ``path`` for reading; ``FILE_CHANGED`` when it is gone or cannot be read."""
    with _reading():
        return path.open("rb")


def guess_content_type(path: Path) -> str:
    """Return the accepted audio type that ``path``'s extension names.

    Raises ``UNSUPPORTED_CONTENT_TYPE`` (before anything is sent) when the
    extension is not one of an accepted audio format.
    """
    extension = policy.filename_extension(path.name)
    for audio in policy.AUDIO_TYPES:
        if extension in audio.extensions:
            return audio.mime_type
    raise UnsupportedContentTypeError(
        "The file's extension names no accepted audio type; pass content_type",
        allowed_extensions=sorted(e for audio in policy.AUDIO_TYPES for e in audio.extensions),
    )


def read_range(
    path: Path,
    offset: int,
    size: int,
    *,
    identity: FileIdentity,
    sent: Callable[[int], None] | None = None,
    abort: threading.Event | None = None,
) -> Iterator[bytes]:
    """Yield the ``size`` bytes of ``path`` from ``offset``, a chunk at a time.

    ``sent`` is told the length of each chunk as it is handed on. Raises
    ``FILE_CHANGED`` unless the file is ``identity`` (its size and
    modification time) when it is opened and after the last byte was read,
    and if it ends early: raised while httpx sends the body, it reaches the
    caller as it is. The OS refusing to read it (a directory now at its path,
    ``EACCES``, ``EIO``) is ``FILE_CHANGED`` too (``reason`` ``unreadable``).
    Once ``abort`` is set, the next chunk raises ``Aborted``.
    """
    remaining = size
    with open_file(path) as handle:
        with _reading():
            identity.check(os.fstat(handle.fileno()))
            handle.seek(offset)
        while remaining:
            check_abort(abort)
            with _reading():
                chunk = handle.read(min(CHUNK_SIZE, remaining))
            if not chunk:
                raise FileChangedError(
                    "The file is shorter than when the upload started", reason="size"
                )
            remaining -= len(chunk)
            if sent is not None:
                sent(len(chunk))
            yield chunk
        identity.check(os.fstat(handle.fileno()))  # nothing wrote it while it was read


class CountingReader:
    """A binary file for httpx's form upload that reports every chunk read from it.

    It keeps ``fileno`` so that httpx can learn the length and send a
    ``Content-Length`` (storage refuses a chunked form upload).
    """

    def __init__(self, handle: BinaryIO, sent: Callable[[int], None]) -> None:
        self._handle = handle
        self._sent = sent

    def read(self, size: int = -1) -> bytes:
        """Read like the file does, reporting the length read (``FILE_CHANGED`` if it cannot)."""
        with _reading():
            chunk = self._handle.read(size)
        if chunk:
            self._sent(len(chunk))
        return chunk

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        """Move like the file does."""
        return self._handle.seek(offset, whence)

    def tell(self) -> int:
        """Report the position like the file does."""
        return self._handle.tell()

    def fileno(self) -> int:
        """Return the file's descriptor (httpx measures the body from it)."""
        return self._handle.fileno()
