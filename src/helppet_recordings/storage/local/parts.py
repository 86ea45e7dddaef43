"""Unfinished multipart uploads on disk: one directory per upload, one file per part.

Under ``root/.multipart/`` (outside ``objects/``, so no listing of objects
ever sees them), an upload is a directory named by its id::

    .multipart/<upload id>/upload.json          key, content type, when it began
    .multipart/<upload id>/<part number>.<md5>  a part (number in five digits)
    .multipart/<upload id>/.tmp-<random>        a part still being received

A part's name carries its MD5 (its ETag), so the part and its ETag appear
together in one rename. Replacing a part (removing the part's other file,
renaming the new one in) happens under an exclusive ``flock`` on the
upload's directory, which completion (committing the object, then moving
the directory to ``.done-<random>``) and abort (moving it to
``.gone-<random>``) also take: a part
lands in the live upload, whole, or is refused. Nothing here ever creates
an upload's directory but :meth:`PartStore.create`, so a part that arrives
after completion or abort cannot bring the upload back.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import secrets
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Final

import attrs

from helppet_recordings.errors import StorageError
from helppet_recordings.models import MultipartUploadInfo, StoredPart
from helppet_recordings.storage.local.files import create_exclusive, fsync_directory, write_all
from helppet_recordings.storage.local.keys import Layout

if sys.platform != "win32":
    import fcntl

__all__ = ["UPLOAD_FILE", "PartStore", "Upload", "no_such_upload"]

UPLOAD_FILE: Final = "upload.json"
"""The file in an upload's directory that says what the upload is."""

_UPLOAD_ID: Final = re.compile(r"[0-9a-f]{32}")
_PART_NAME: Final = re.compile(r"(\d{5})\.([0-9a-f]{32})")
_TEMP_PREFIX: Final = ".tmp-"
_MOVED_PREFIXES: Final = (".new-", ".done-", ".gone-")


@attrs.frozen(kw_only=True)
class Upload:
    """An unfinished upload as its ``upload.json`` describes it."""

    upload_id: str
    key: str
    content_type: str
    initiated: dt.datetime
    directory: Path


def no_such_upload() -> StorageError:
    """``StorageError`` with ``storage_error="NoSuchUpload"``, as S3 answers."""
    return StorageError("The multipart upload does not exist", storage_error="NoSuchUpload")


class PartStore:
    """The unfinished multipart uploads of one :class:`Layout`.

    ``clock`` (Unix time) dates each upload's start; with ``fsync`` every
    rename is flushed to disk before it is acknowledged.
    """

    def __init__(self, layout: Layout, *, fsync: bool, clock: Callable[[], float]) -> None:
        self.layout = layout
        self.fsync = fsync
        self._clock = clock

    # ---------------------------------------------------------------------- uploads

    def create(self, key: str, content_type: str) -> str:
        """Make a new upload's directory with its ``upload.json`` (one rename); return its id."""
        upload_id = secrets.token_hex(16)
        initiated = dt.datetime.fromtimestamp(self._clock(), dt.UTC)
        self.layout.multipart.mkdir(exist_ok=True)
        draft = self.layout.multipart / f".new-{secrets.token_hex(8)}"
        draft.mkdir()
        try:
            document = {
                "key": key,
                "content_type": content_type,
                "initiated": initiated.isoformat(),
            }
            with create_exclusive(draft / UPLOAD_FILE) as handle:
                write_all(handle, json.dumps(document, sort_keys=True).encode("utf-8"))
                if self.fsync:
                    os.fsync(handle.fileno())
            draft.rename(self.layout.multipart / upload_id)
        except BaseException:
            shutil.rmtree(draft, ignore_errors=True)
            raise
        if self.fsync:
            fsync_directory(self.layout.multipart)
        return upload_id

    def get(self, key: str, upload_id: str) -> Upload:
        """Return the live upload ``upload_id`` of ``key``; raise ``NoSuchUpload`` otherwise."""
        if not isinstance(upload_id, str) or not _UPLOAD_ID.fullmatch(upload_id):
            raise no_such_upload()
        upload = _read_upload(self.layout.multipart / upload_id)
        if upload is None or upload.key != key:
            raise no_such_upload()
        return upload

    def list_uploads(self, prefix: str) -> list[MultipartUploadInfo]:
        """Return every live upload whose key starts with ``prefix``, by key then id."""
        found: list[MultipartUploadInfo] = []
        with contextlib.suppress(FileNotFoundError), os.scandir(self.layout.multipart) as scan:
            for entry in scan:
                if _UPLOAD_ID.fullmatch(entry.name):
                    upload = _read_upload(Path(entry.path))
                    if upload is not None and upload.key.startswith(prefix):
                        found.append(
                            MultipartUploadInfo(upload.key, upload.upload_id, upload.initiated)
                        )
        return sorted(found)

    @contextlib.contextmanager
    def locked(self, upload: Upload) -> Iterator[None]:
        """Hold the upload's lock while its directory is still the live upload's.

        Raises ``NoSuchUpload`` when the directory was moved away (completed
        or aborted) before the lock was taken.
        """
        try:
            fd = os.open(upload.directory, os.O_RDONLY)
        except (FileNotFoundError, NotADirectoryError):
            raise no_such_upload() from None
        try:
            with _process_lock:
                if sys.platform != "win32":
                    with contextlib.suppress(OSError):  # no directory locks: the process lock
                        fcntl.flock(fd, fcntl.LOCK_EX)
                try:
                    still_there = os.path.samestat(upload.directory.stat(), os.fstat(fd))
                except (FileNotFoundError, NotADirectoryError):
                    still_there = False
                if not still_there:
                    raise no_such_upload()
                yield
        finally:
            os.close(fd)  # releases the flock

    def take(self, upload: Upload) -> Path:
        """Move the upload's directory away (abort); return where it went.

        From then on the upload does not exist: its parts are refused and it
        is not listed.
        """
        target = self.layout.multipart / f".gone-{secrets.token_hex(8)}"
        with self.locked(upload):
            upload.directory.rename(target)
        return target

    def finish(self, upload: Upload, commit: Callable[[], None]) -> Path:
        """Run ``commit`` (it stores the upload's object), then take the upload; return where.

        Both happen in one turn of the upload's lock, so the upload is there
        until its object is: at every instant a reader finds one of the two.
        Raises ``NoSuchUpload``, running nothing, when the upload was
        completed or aborted meanwhile; whatever ``commit`` raises keeps the
        upload as it was.
        """
        target = self.layout.multipart / f".done-{secrets.token_hex(8)}"
        with self.locked(upload):
            commit()
            upload.directory.rename(target)
        return target

    @staticmethod
    def remove(taken: Path) -> None:
        """Delete a taken upload's directory with its parts (and any part still arriving)."""
        shutil.rmtree(taken, ignore_errors=True)

    # ------------------------------------------------------------------------ parts

    def parts(self, directory: Path) -> list[tuple[StoredPart, Path]]:
        """Return the parts in ``directory`` with their files, one per number, in order."""
        held: dict[int, tuple[StoredPart, Path]] = {}
        try:
            with os.scandir(directory) as scan:
                for entry in scan:
                    match = _PART_NAME.fullmatch(entry.name)
                    if match is None or not entry.is_file(follow_symlinks=False):
                        continue
                    number = int(match.group(1))
                    size = entry.stat(follow_symlinks=False).st_size
                    held[number] = (StoredPart(number, size, match.group(2)), Path(entry.path))
        except (FileNotFoundError, NotADirectoryError):
            raise no_such_upload() from None
        return [held[number] for number in sorted(held)]

    def list_parts(self, key: str, upload_id: str) -> list[StoredPart]:
        """Return the parts held for the live upload, one per number, in order."""
        upload = self.get(key, upload_id)
        with self.locked(upload):
            return [part for part, _ in self.parts(upload.directory)]

    def temp_path(self, upload: Upload) -> Path:
        """Return a fresh name for a part being received, inside the upload's directory."""
        return upload.directory / f"{_TEMP_PREFIX}{secrets.token_hex(16)}"

    def place(self, upload: Upload, temp: Path, part_number: int, md5: str) -> None:
        """Make a received part (flushed, at ``temp``) part ``part_number`` of the live upload.

        Under the upload's lock the part's previous file goes, then the new
        one is renamed in: readers never see two files for one number.
        Raises ``NoSuchUpload`` when the upload was completed or aborted
        meanwhile (``temp`` went with its directory).
        """
        with self.locked(upload):
            for part, path in self.parts(upload.directory):
                if part.part_number == part_number:
                    path.unlink(missing_ok=True)
            temp.rename(upload.directory / f"{part_number:05d}.{md5}")
        if self.fsync:
            with contextlib.suppress(FileNotFoundError):
                fsync_directory(upload.directory)

    def purge_debris(self, older_than: float) -> None:
        """Remove what crashed processes left behind: half-made or taken uploads, part temps."""
        cutoff = time.time() - older_than
        entries: list[os.DirEntry[str]] = []
        with contextlib.suppress(FileNotFoundError), os.scandir(self.layout.multipart) as scan:
            entries = list(scan)
        for entry in entries:
            with contextlib.suppress(OSError):
                if entry.name.startswith(_MOVED_PREFIXES):
                    if entry.stat(follow_symlinks=False).st_mtime < cutoff:
                        shutil.rmtree(entry.path, ignore_errors=True)
                elif _UPLOAD_ID.fullmatch(entry.name):
                    for inner in Path(entry.path).glob(f"{_TEMP_PREFIX}*"):
                        if inner.lstat().st_mtime < cutoff:
                            inner.unlink()


_process_lock = threading.Lock()
"""Parts, completion and abort take turns in a process too (flock is per open file)."""


def _read_upload(directory: Path) -> Upload | None:
    try:
        document = json.loads((directory / UPLOAD_FILE).read_bytes())
        return Upload(
            upload_id=directory.name,
            key=document["key"],
            content_type=document["content_type"],
            initiated=dt.datetime.fromisoformat(document["initiated"]),
            directory=directory,
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
