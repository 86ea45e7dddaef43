"""Uploads being received: a temporary file per upload, its size and its digests.

Every upload streams into its own file in ``root/.incoming/`` (on the same
filesystem as the objects, so the commit is a rename) while its MD5 (the
ETag) and SHA-256 are computed, in worker threads and in parallel with the
disk write.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import os
import secrets
import stat
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import IO, Final, Self

from helppet_recordings.errors import StorageError
from helppet_recordings.models import StoredObject
from helppet_recordings.storage.local.files import create_exclusive, fsync_directory, write_all
from helppet_recordings.storage.local.keys import META_SUFFIX, Layout
from helppet_recordings.storage.local.objects import STAGING_SUFFIX, ObjectStore
from helppet_recordings.storage.local.refusal import (
    LocalStorageRefusal,
    entity_too_large,
    key_conflict,
)
from helppet_recordings.storage.local.sidecars import describes, read_sidecar, sidecar
from helppet_recordings.storage.local.signing import UploadPolicy

__all__ = [
    "PARALLEL_DIGEST_BYTES",
    "STALE_STAGING_SECONDS",
    "Digests",
    "StagedUpload",
    "purge_stale_staging",
    "recover_sidecars",
]

STALE_STAGING_SECONDS: Final = 24 * 60 * 60
"""Staged uploads older than this are debris of a crashed process and are removed."""

PARALLEL_DIGEST_BYTES: Final = 128 * 1024
"""Pieces at least this long are hashed in worker threads, in parallel with the disk write."""


class StagedUpload:
    """One upload being received: a temporary file, its size and its digests.

    Write the body with :meth:`write`, then :meth:`commit` (which checks the
    policy's minimum size and moves the file into place atomically) or
    :meth:`discard`. Closing without committing discards. Not thread-safe:
    one upload is written by one thread at a time.
    """

    def __init__(
        self,
        *,
        policy: UploadPolicy,
        staging_dir: Path,
        data_path: Path,
        meta_path: Path,
        store: ObjectStore,
    ) -> None:
        self.policy = policy
        self.data_path = data_path
        self.meta_path = meta_path
        self.size = 0
        self._store = store
        self._digests = Digests()
        self._path: Path | None = staging_dir / f"{secrets.token_hex(16)}{STAGING_SUFFIX}"
        self._file: IO[bytes] | None = create_exclusive(self._path)

    @property
    def temp_path(self) -> Path | None:
        """The temporary file while the upload is open, else None."""
        return self._path

    def write(self, data: bytes | memoryview) -> None:
        """Append body bytes; raise ``EntityTooLarge`` once the policy's maximum is passed.

        ``data`` must not change until the next call (it may still be being hashed).
        """
        if self._file is None:
            msg = "the upload is closed"
            raise RuntimeError(msg)
        size = self.size + len(data)
        if size > self.policy.max_size:
            raise entity_too_large(self.policy.max_size)
        self._digests.update(data)  # hashed in worker threads while this thread writes
        write_all(self._file, data)
        self.size = size

    def commit(self) -> StoredObject:
        """Flush the file and move it into place with its sidecar; return the stored object.

        Raises (and discards) ``EntityTooSmall`` below the policy's minimum
        size, ``BadDigest`` when the policy pins another SHA-256 and
        ``KeyConflict`` when the key cannot be a file beside the objects
        stored: then nothing is moved, and whatever the key held stays as it was.
        """
        if self._file is None or self._path is None:
            msg = "the upload is closed"
            raise RuntimeError(msg)
        if self.size < self.policy.min_size:
            self.discard()
            raise LocalStorageRefusal(
                400,
                "EntityTooSmall",
                "Your proposed upload is smaller than the minimum allowed size",
                MinSizeAllowed=str(self.policy.min_size),
            )
        md5, sha256 = self._digests.hexdigests()
        if self.policy.sha256 is not None and sha256 != self.policy.sha256:
            self.discard()
            raise LocalStorageRefusal(
                400,
                "BadDigest",
                "The SHA256 you specified did not match the calculated checksum.",
            )
        handle, path = self._file, self._path
        try:
            handle.flush()
            if self._store.fsync:
                os.fsync(handle.fileno())
            status = os.fstat(handle.fileno())
            handle.close()
            stored_at = dt.datetime.now(dt.UTC)
            meta = sidecar(
                key=self.policy.key,
                content_type=self.policy.content_type,
                size=self.size,
                md5=md5,
                sha256=sha256,
                status=status,
                stored_at=stored_at,
            )
            self._store.commit(path, self.data_path, self.meta_path, meta)
        except StorageError as exc:
            raise key_conflict(exc.message) from None
        finally:
            self.discard()
        return StoredObject(
            key=self.policy.key,
            size=self.size,
            content_type=self.policy.content_type,
            etag=md5,
            sha256=sha256,
            server_side_encryption=None,
            last_modified=stored_at,
        )

    def discard(self) -> None:
        """Close and delete the temporary file (if it is still there); safe to repeat."""
        handle, self._file = self._file, None
        path, self._path = self._path, None
        self._digests.wait()
        if handle is not None:
            handle.close()
        if path is not None:
            path.unlink(missing_ok=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.discard()


def recover_sidecars(layout: Layout, *, fsync: bool) -> None:
    """Put back each sidecar a crash left in staging that alone describes its key's file.

    A commit renames the key's earlier sidecar into staging before its own
    moves (see ``ObjectStore._install``), and a commit's new sidecar waits
    there until it moves: a process killed between the moves leaves a data
    file at the key that only a sidecar in staging describes, and the object
    would read as missing (and that sidecar be purged). Such a sidecar (one
    recording a valid key, describing exactly the file at that key while the
    key's own sidecar does not) is renamed back to the key's sidecar path;
    any other is left to :func:`purge_stale_staging`. Runs under the root's
    commit lock (``commit_turn``), so no commit is between its moves meanwhile.
    """
    for entry in sorted(layout.staging.glob(f"*{META_SUFFIX}{STAGING_SUFFIX}")):
        _, meta = read_sidecar(entry)
        key = meta.get("key")
        try:
            data_path, meta_path = layout.paths(key) if isinstance(key, str) else (None, None)
        except ValueError:
            continue
        if data_path is None or meta_path is None or not _describes(meta, data_path):
            continue
        if _describes(read_sidecar(meta_path)[1], data_path):
            continue  # the key's own sidecar describes its file: the object is whole
        with contextlib.suppress(OSError):  # left to the purge, as before
            meta_path.parent.mkdir(parents=True, exist_ok=True)
            entry.replace(meta_path)
            if fsync:
                fsync_directory(meta_path.parent)


def _describes(meta: dict[str, object], data_path: Path) -> bool:
    """Whether ``meta`` describes exactly the regular file at ``data_path``."""
    try:
        status = data_path.lstat()
    except (FileNotFoundError, NotADirectoryError):
        return False
    return stat.S_ISREG(status.st_mode) and describes(
        meta, status.st_ino, status.st_dev, status.st_size, status.st_mtime_ns
    )


def purge_stale_staging(layout: Layout) -> None:
    """Remove temporary files older than :data:`STALE_STAGING_SECONDS` (a crash's debris)."""
    cutoff = time.time() - STALE_STAGING_SECONDS
    for entry in layout.staging.iterdir():
        with contextlib.suppress(OSError):
            if entry.name.endswith(STAGING_SUFFIX) and entry.lstat().st_mtime < cutoff:
                entry.unlink()


class Digests:
    """MD5 (the ETag) and SHA-256 of a stream, in order.

    Pieces of ``PARALLEL_DIGEST_BYTES`` or more are hashed in a shared pool of
    worker threads (hashlib releases the GIL), both digests at once and while
    the caller writes the same piece to disk; each piece waits for the
    previous one, so the digests see the bytes in order.
    """

    def __init__(self) -> None:
        self._md5 = hashlib.md5()  # noqa: S324 - the S3 ETag is MD5 by definition
        self._sha256 = hashlib.sha256()
        self._pending: tuple[Future[None], Future[None]] | None = None

    def update(self, data: bytes | memoryview) -> None:
        """Hash ``data`` after what came before; it must not change until the next call."""
        self.wait()
        if len(data) >= PARALLEL_DIGEST_BYTES:
            pool = _digest_pool()
            self._pending = (
                pool.submit(self._md5.update, data),
                pool.submit(self._sha256.update, data),
            )
        else:
            self._md5.update(data)
            self._sha256.update(data)

    def wait(self) -> None:
        """Wait until every piece handed over so far is hashed."""
        pending, self._pending = self._pending, None
        if pending is not None:
            for future in pending:
                future.result()

    def hexdigests(self) -> tuple[str, str]:
        """Return the MD5 and SHA-256 of everything hashed, as lower-case hex."""
        self.wait()
        return self._md5.hexdigest(), self._sha256.hexdigest()


_pool_lock = threading.Lock()
_pool: list[ThreadPoolExecutor] = []


def _digest_pool() -> ThreadPoolExecutor:
    with _pool_lock:
        if not _pool:
            workers = max(2, min(8, os.cpu_count() or 2))
            _pool.append(ThreadPoolExecutor(workers, thread_name_prefix="helppet-digest"))
        return _pool[0]
