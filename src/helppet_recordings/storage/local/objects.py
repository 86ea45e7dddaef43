"""Objects on disk: each one a data file and a JSON sidecar that must describe it exactly.

``objects/<key>`` holds the bytes as uploaded; ``sidecars/<key>`` what
:mod:`.sidecars` describes. An object exists only while its sidecar describes
exactly the file on disk: a crash or a reader between the two moves of a
commit sees "no object", never wrong metadata. A sidecar of the earlier layout
(``meta/<key>.json``) is read when the key has no current one, and removed
when the key is written, moved or deleted.

Commits and deletes under one root take turns (a lock per root in the
process, and ``flock`` on the staging directory across processes), so two
uploads of one key can never leave the data of one with the sidecar of the
other: the last to commit wins, whole. A key that cannot be a file because
stored keys use it as a directory (``x/a`` while ``x/a/b`` is stored), or
whose directory is a stored object (the other way round), is refused before
anything moves (:func:`key_conflict`).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import stat
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Final

from helppet_recordings.errors import StorageError, StorageUnavailableError
from helppet_recordings.models import StoredObject
from helppet_recordings.storage.local.files import (
    create_exclusive,
    fsync_directory,
    open_regular,
    prune,
    replace_into,
    write_all,
)
from helppet_recordings.storage.local.keys import META_SUFFIX, Layout, check_key, contained
from helppet_recordings.storage.local.sidecars import (
    describes,
    object_info,
    read_sidecar,
    sidecar,
)

if sys.platform != "win32":
    import fcntl

__all__ = ["KEY_CONFLICT", "STAGING_SUFFIX", "ObjectStore", "key_conflict", "sidecar"]

STAGING_SUFFIX: Final = ".part"
"""The name ending of every temporary file in the staging directory."""

KEY_CONFLICT: Final = "KeyConflict"
"""``storage_error`` of a key that cannot be a file beside the objects stored (see the module)."""

_READ_ATTEMPTS: Final = 5
_READ_RETRY_SECONDS: Final = 0.01


class ObjectStore:
    """Reads, lists, commits and deletes the objects of one :class:`Layout`.

    With ``fsync`` a commit flushes the sidecar and the directories it
    changed to disk.
    """

    def __init__(self, layout: Layout, *, fsync: bool) -> None:
        self.layout = layout
        self.fsync = fsync

    def head(self, key: str) -> StoredObject | None:
        """Return what is known of the complete object at ``key``, or None."""
        try:
            data_path, meta_path = self.layout.paths(key)
        except ValueError:
            return None
        for _ in range(_READ_ATTEMPTS):
            try:
                status = data_path.lstat()
            except (FileNotFoundError, NotADirectoryError):
                return None
            if not stat.S_ISREG(status.st_mode):
                return None
            info = object_info(self.layout, key, status, meta_path)
            if info is not None:
                return info
            # A commit or delete is between its two steps (or crashed there): look again.
            time.sleep(_READ_RETRY_SECONDS)
        return None

    def open(self, key: str) -> tuple[IO[bytes], StoredObject] | None:
        """Open a complete object for reading: its open file and what is known of it."""
        try:
            data_path, meta_path = self.layout.paths(key)
        except ValueError:
            return None
        for _ in range(_READ_ATTEMPTS):
            try:
                handle = open_regular(data_path)
            except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
                return None
            try:
                info = object_info(self.layout, key, os.fstat(handle.fileno()), meta_path)
            except BaseException:
                handle.close()
                raise
            if info is not None:
                return handle, info
            handle.close()
            time.sleep(_READ_RETRY_SECONDS)
        return None

    def delete(self, key: str) -> None:
        """Remove the object and its sidecar, and prune emptied directories."""
        try:
            data_path, meta_path = self.layout.paths(key)
        except ValueError:
            return
        legacy = self.layout.legacy_sidecar(key)
        with self._turn():
            for path in (meta_path, legacy, data_path):
                _remove_file(path)
            prune(data_path.parent, self.layout.objects)
            prune(meta_path.parent, self.layout.sidecars)
            if legacy is not None:
                prune(legacy.parent, self.layout.legacy_meta)

    def iter(self, prefix: str) -> Iterator[StoredObject]:
        """Yield every complete object whose key starts with ``prefix``, in code point order."""
        objects = self.layout.objects
        directory, _, _ = prefix.rpartition("/")
        start, start_key = objects, ""
        if directory:
            try:
                start = objects.joinpath(*check_key(directory))
            except ValueError:
                return
            start_key = directory + "/"
        if contained(start, objects):
            yield from self._walk(start, start_key, prefix)

    def commit(
        self, temp_path: Path, data_path: Path, meta_path: Path, meta: dict[str, Any]
    ) -> None:
        """Move a complete, flushed upload into place: the data first, then its sidecar.

        Raises :func:`key_conflict` (moving nothing) when the key cannot be a
        file beside the objects stored.
        """
        staging = self.layout.staging
        meta_temp = staging / f"{secrets.token_hex(16)}{META_SUFFIX}{STAGING_SUFFIX}"
        legacy = self.layout.legacy_sidecar(meta["key"])
        try:
            with create_exclusive(meta_temp) as handle:
                write_all(handle, json.dumps(meta, sort_keys=True).encode("utf-8"))
                if self.fsync:
                    os.fsync(handle.fileno())
            with self._turn():
                if _blocked(data_path, self.layout.objects) or _blocked(
                    meta_path, self.layout.sidecars
                ):
                    raise key_conflict()
                replace_into(temp_path, data_path)
                replace_into(meta_temp, meta_path)
                if legacy is not None:  # it describes a file that is gone now
                    _remove_file(legacy)
                    prune(legacy.parent, self.layout.legacy_meta)
        finally:
            meta_temp.unlink(missing_ok=True)
        if self.fsync:
            fsync_directory(data_path.parent)
            fsync_directory(meta_path.parent)

    def promote(
        self, source_key: str, target_key: str, expected: StoredObject
    ) -> StoredObject | None:
        """Move the object at ``source_key`` to ``target_key`` if it is still ``expected``.

        Under the root's commit lock (no upload can commit meanwhile) the
        source's sidecar is read and its data file renamed to a private name;
        it is promoted only if the sidecar described exactly that file (inode,
        device, size, modification time) with ``expected``'s ETag and size.
        Otherwise it goes back where it was and None is returned. A target
        that cannot be a file beside the objects stored raises
        :func:`key_conflict`, and a failing disk ``StorageUnavailableError``;
        either way the source stays as it was (see :meth:`_put_back`).
        """
        try:
            data_path, meta_path = self.layout.paths(source_key)
            target_data, target_meta = self.layout.paths(target_key)
        except ValueError:
            return None
        taken = self.layout.staging / f"{secrets.token_hex(16)}{STAGING_SUFFIX}"
        sidecar_paths = [meta_path, self.layout.legacy_sidecar(source_key)]
        moved: list[tuple[Path, Path]] = []  # (where a file was, where it is now)
        try:
            with self._turn():
                sidecars = [meta for _, meta in map(read_sidecar, sidecar_paths)]
                if not any(sidecars):
                    return None
                if _blocked(target_data, self.layout.objects) or _blocked(
                    target_meta, self.layout.sidecars
                ):
                    raise key_conflict()
                try:
                    data_path.rename(taken)
                except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
                    return None
                moved.append((data_path, taken))
                status = taken.lstat()
                described = (status.st_ino, status.st_dev, status.st_size, status.st_mtime_ns)
                found = [
                    meta
                    for meta in sidecars
                    if describes(meta, *described) and meta.get("md5") == expected.etag
                ]
                if not found or status.st_size != expected.size:
                    taken.rename(data_path)  # put it back as it was
                    return None
                # Its data file is gone, so the sidecars describe nothing: they are renamed
                # aside, not removed, so that putting the object back needs no new space.
                self._set_aside(sidecar_paths, moved)
            self.commit(taken, target_data, target_meta, {**found[0], "key": target_key})
        except StorageError:
            # The target cannot be a file here: put the object back where it was, as it was.
            self._put_back(moved, target_data)
            raise
        except OSError as exc:
            # A full or failing disk: put the object back where it was, as it was (the
            # sidecar describes the same inode), so nothing changed and a retry can succeed.
            self._put_back(moved, target_data)
            raise StorageUnavailableError(
                "Storage could not move the file; nothing changed, retry later",
                storage_error=type(exc).__name__,
            ) from None  # the OS error names paths, which hold user ids
        for _, aside in moved[1:]:
            aside.unlink(missing_ok=True)
        prune(data_path.parent, self.layout.objects)
        prune(meta_path.parent, self.layout.sidecars)
        if sidecar_paths[1] is not None:
            prune(sidecar_paths[1].parent, self.layout.legacy_meta)
        return self.head(target_key)

    def _set_aside(self, paths: list[Path | None], moved: list[tuple[Path, Path]]) -> None:
        """Rename the files among ``paths`` into staging, adding (where, to where) to ``moved``."""
        for path in paths:
            aside = self.layout.staging / f"{secrets.token_hex(16)}{META_SUFFIX}{STAGING_SUFFIX}"
            try:
                if path is not None and stat.S_ISREG(path.lstat().st_mode):
                    path.rename(aside)
                    moved.append((path, aside))
            except (FileNotFoundError, NotADirectoryError):
                continue

    def _put_back(self, moved: list[tuple[Path, Path]], target_data: Path) -> None:
        """Rename a promoted object's files back to its source key, as they were.

        ``moved`` is the data file's (source path, private path), then its
        sidecars'; the data is at ``target_data`` if the commit moved it
        there. Renames need no new space, so a full disk cannot refuse them.
        If the source was uploaded again meanwhile, that newer object stays
        and these files are dropped. Raises ``StorageError`` if any file
        cannot be put back: the object may then be at neither key.
        """
        if not moved:
            return
        (data_path, data), *_ = moved
        failed = False
        with self._turn():
            if not data.exists():
                moved = [(data_path, target_data), *moved[1:]]
            newer = os.path.lexists(data_path)
            for origin, path in moved:
                try:
                    if newer:
                        path.unlink()
                    else:
                        replace_into(path, origin)
                except OSError:
                    failed = True
        if failed:
            raise StorageError(
                "Storage could not move the file, nor put it back where it was: the object "
                "may now be at neither key",
                storage_error="InternalError",
            ) from None  # an OS error being handled names paths, which hold user ids

    @contextlib.contextmanager
    def _turn(self) -> Iterator[None]:
        """Hold this root's commit lock: in the process, then across processes."""
        with _process_lock(self.layout.root):
            if sys.platform == "win32":  # pragma: no cover - no flock: the process lock only
                yield
                return
            fd = os.open(self.layout.staging, os.O_RDONLY)
            try:
                # A filesystem without directory locks (some network mounts) keeps the
                # process lock only; that is all a single process ever needs.
                with contextlib.suppress(OSError):
                    fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)  # releases the flock

    def _walk(self, directory: Path, key_prefix: str, prefix: str) -> Iterator[StoredObject]:
        """Yield the objects under ``directory`` (whose keys start ``key_prefix``) in key order.

        A directory sorts as its name plus ``/``: every key inside it starts
        that way, so the walk visits keys in exactly string order.
        """
        try:
            with os.scandir(directory) as scan:
                entries = [
                    (entry.name + "/" if entry.is_dir(follow_symlinks=False) else entry.name, entry)
                    for entry in scan
                    if not entry.name.startswith(".")
                ]
        except (FileNotFoundError, NotADirectoryError):
            return
        for name, entry in sorted(entries, key=lambda item: item[0]):
            key = key_prefix + name
            if name.endswith("/"):
                if key.startswith(prefix) or prefix.startswith(key):
                    yield from self._walk(Path(entry.path), key, prefix)
            elif key.startswith(prefix) and entry.is_file(follow_symlinks=False):
                found = self.head(key)
                if found is not None:
                    yield found


_process_locks: dict[Path, threading.Lock] = {}
_process_locks_guard = threading.Lock()


def _process_lock(root: Path) -> threading.Lock:
    """Return the one lock of ``root`` in this process, whichever LocalStorage uses it."""
    with _process_locks_guard:
        return _process_locks.setdefault(root, threading.Lock())


def key_conflict() -> StorageError:
    """``StorageError`` (:data:`KEY_CONFLICT`): the key cannot be a file beside stored objects."""
    return StorageError(
        "LocalStorage cannot store this key: a stored object's key is this key followed by "
        "'/', or this key is a stored object's key followed by '/' (a file cannot also be "
        "a directory)",
        storage_error=KEY_CONFLICT,
    )


def _blocked(path: Path, base: Path) -> bool:
    """Whether no file can be moved to ``path``: a directory on its way is not one, or it is one.

    An empty directory in its place (debris of a crash) is removed instead.
    Runs under the commit lock, so nothing changes meanwhile.
    """
    directory = base
    for name in path.relative_to(base).parts[:-1]:
        directory /= name
        try:
            if not stat.S_ISDIR(directory.stat().st_mode):
                return True
        except FileNotFoundError:
            return False
    try:
        if not stat.S_ISDIR(path.lstat().st_mode):
            return False
    except FileNotFoundError:
        return False
    try:
        path.rmdir()
    except OSError:
        return True
    return False


def _remove_file(path: Path | None) -> None:
    """Remove the file at ``path`` if there is one (not a directory in its place)."""
    if path is not None:
        with contextlib.suppress(FileNotFoundError, NotADirectoryError, IsADirectoryError):
            path.unlink()
