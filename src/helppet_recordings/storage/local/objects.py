"""Objects on disk: each one a data file and a JSON sidecar that must describe it exactly.

``objects/<key>`` holds the bytes as uploaded; ``sidecars/<key>`` what
:mod:`.sidecars` describes. An object exists only while its sidecar describes
exactly the file on disk: a crash or a reader between the two moves of a
commit sees "no object", never wrong metadata. A sidecar of the earlier layout
(``meta/<key>.json``) is read when the key has no current one, and removed
when the key is written, moved or deleted.

Commits, promotes and deletes under one root take turns (:mod:`.turns`), so
two uploads of one key can never leave the data of one with the sidecar of the
other: the last to commit wins, whole. A promote is one turn whose one rename
moves the data from the source to the target (its sidecar already in place): a
reader finds the object at one of the two keys at every instant. A key that
cannot be a file because stored keys use it as a directory (``x/a`` while
``x/a/b`` is stored), or whose directory is a stored object (the other way
round), is refused before anything moves (:func:`key_conflict`).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import stat
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
    describing,
    object_info,
    read_sidecar,
    sidecar,
)
from helppet_recordings.storage.local.turns import commit_turn

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
        with commit_turn(self.layout):
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
        """Move a complete, flushed upload into place: its sidecar first, then the data.

        The object the key held stays whole until the data's rename replaces
        it: should a move fail, the key keeps that object, the upload stays at
        ``temp_path`` and the ``OSError`` is raised (see :meth:`_install`).
        Raises :func:`key_conflict` (moving nothing) when the key cannot be a
        file beside the objects stored.
        """
        meta_temp = self._write_sidecar(meta)
        try:
            with commit_turn(self.layout):
                if _blocked(data_path, self.layout.objects) or _blocked(
                    meta_path, self.layout.sidecars
                ):
                    raise key_conflict()
                self._install(temp_path, data_path, meta_temp, meta_path, target_key=meta["key"])
        finally:
            meta_temp.unlink(missing_ok=True)
        if self.fsync:
            fsync_directory(data_path.parent)

    def promote(
        self, source_key: str, target_key: str, expected: StoredObject
    ) -> StoredObject | None:
        """Move the object at ``source_key`` to ``target_key`` if it is still ``expected``.

        In one turn of the root's commit lock (no upload can commit
        meanwhile) the source's sidecar is read, and the object is promoted
        only if that sidecar describes exactly the data file there (inode,
        device, size, modification time) with ``expected``'s ETag and size;
        otherwise nothing moves and None is returned. The target's sidecar is
        put in place first, then the data file is renamed from the source to
        the target: that one rename is the instant the object leaves the
        source and appears at the target, so a reader finds it at one of the
        two keys at every instant. A target that cannot be a file beside the
        objects stored raises :func:`key_conflict`, and a failing disk
        ``StorageUnavailableError``; either way the source stays as it was
        (see :meth:`_install`).
        """
        try:
            data_path, meta_path = self.layout.paths(source_key)
            target_data, target_meta = self.layout.paths(target_key)
        except ValueError:
            return None
        sidecar_paths = [meta_path, self.layout.legacy_sidecar(source_key)]
        meta_temp: Path | None = None
        try:
            with commit_turn(self.layout):
                sidecars = [meta for _, meta in map(read_sidecar, sidecar_paths)]
                if not any(sidecars):
                    return None
                if _blocked(target_data, self.layout.objects) or _blocked(
                    target_meta, self.layout.sidecars
                ):
                    raise key_conflict()
                found = describing(data_path, sidecars, etag=expected.etag, size=expected.size)
                if found is None or (data_path, meta_path) == (target_data, target_meta):
                    return None if found is None else self.head(target_key)
                meta_temp = self._write_sidecar({**found, "key": target_key})
                self._install(data_path, target_data, meta_temp, target_meta, target_key=target_key)
                with contextlib.suppress(OSError):  # they describe a file that is gone now
                    for path in sidecar_paths:
                        _remove_file(path)
                    prune(data_path.parent, self.layout.objects)
                    prune(meta_path.parent, self.layout.sidecars)
                    if sidecar_paths[1] is not None:
                        prune(sidecar_paths[1].parent, self.layout.legacy_meta)
        except _PutBackError:
            raise StorageError(
                "Storage could not move the file, nor put back the sidecar of the object the "
                "target held: that object may be unreadable until it is stored again",
                storage_error="InternalError",
            ) from None  # the OS error names paths, which hold user ids
        except OSError as exc:
            # A full or failing disk: nothing moved (see _install), so a retry can succeed.
            raise StorageUnavailableError(
                "Storage could not move the file; nothing changed, retry later",
                storage_error=type(exc).__name__,
            ) from None  # the OS error names paths, which hold user ids
        finally:
            if meta_temp is not None:
                meta_temp.unlink(missing_ok=True)
        if self.fsync:
            try:
                fsync_directory(target_data.parent)
            except OSError as exc:
                raise StorageUnavailableError(
                    "Storage moved the file but could not flush the move to disk; retry later",
                    storage_error=type(exc).__name__,
                ) from None
        return self.head(target_key)

    def place(self, source: Path, target: Path) -> None:
        """Rename ``source`` onto ``target``, creating its directories (each move that commits)."""
        replace_into(source, target)

    def _write_sidecar(self, meta: dict[str, Any]) -> Path:
        """Write ``meta`` whole to a new file in staging (flushed with ``fsync``); return it."""
        meta_temp = self._sidecar_temp()
        try:
            with create_exclusive(meta_temp) as handle:
                write_all(handle, json.dumps(meta, sort_keys=True).encode("utf-8"))
                if self.fsync:
                    os.fsync(handle.fileno())
        except BaseException:
            meta_temp.unlink(missing_ok=True)
            raise
        return meta_temp

    def _sidecar_temp(self) -> Path:
        """Return a fresh name for a sidecar in staging."""
        return self.layout.staging / f"{secrets.token_hex(16)}{META_SUFFIX}{STAGING_SUFFIX}"

    def _install(
        self, data_from: Path, data_path: Path, meta_from: Path, meta_path: Path, *, target_key: str
    ) -> None:
        """Make the file at ``data_from`` the object at ``data_path``, described by ``meta_from``.

        Runs under the commit lock. The sidecar moves first, then the data:
        the data's rename is the instant the object appears, and the object
        the key held stays whole until then. Should a move fail (``OSError``),
        everything is renamed back as it was (renames need no new space) and
        the error raised: ``data_from`` is where it was and the key holds what
        it held. Raises :class:`_PutBackError` if even that fails.
        """
        aside: Path | None = None
        try:  # the earlier object's sidecar: put back should the move fail
            meta_path.rename(aside := self._sidecar_temp())
        except (FileNotFoundError, NotADirectoryError):
            aside = None
        placed = False
        try:
            self.place(meta_from, meta_path)
            placed = True
            if self.fsync:  # the sidecar must be on disk before its data is
                fsync_directory(meta_path.parent)
            self.place(data_from, data_path)
        except OSError:
            self._restore(meta_path, data_path, aside, placed=placed)
            raise
        if aside is not None:
            aside.unlink(missing_ok=True)
        legacy = self.layout.legacy_sidecar(target_key)
        if legacy is not None:  # it describes a file that is gone now
            _remove_file(legacy)
            prune(legacy.parent, self.layout.legacy_meta)

    def _restore(
        self, meta_path: Path, data_path: Path, aside: Path | None, *, placed: bool
    ) -> None:
        """Undo a failed :meth:`_install`: its sidecar goes, the key's earlier one comes back."""
        try:
            if placed:
                meta_path.unlink()
            if aside is not None:
                aside.rename(meta_path)
        except OSError as exc:
            raise _PutBackError(exc.errno, "the earlier sidecar could not be put back") from None
        prune(meta_path.parent, self.layout.sidecars)
        prune(data_path.parent, self.layout.objects)

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


class _PutBackError(OSError):
    """A move failed, and so did renaming the key's earlier sidecar back."""


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
