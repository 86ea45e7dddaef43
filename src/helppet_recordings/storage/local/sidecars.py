"""Sidecars: the JSON beside each object, and when one may be believed.

``sidecars/<key>`` mirrors ``objects/<key>`` name for name (see :mod:`.keys`)
and holds the object's content type, size, MD5 (the ETag), SHA-256 and when
it was stored, together with the data file's inode, device, size and
modification time. A sidecar counts only while it describes exactly the file
on disk, so a file replaced behind its back is never reported with its
checksums. A sidecar of the earlier layout (``meta/<key>.json``) is read when
the key has no current one. Writing, moving and removing sidecars is
:mod:`.objects`'s, under the root's commit lock.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import stat
from pathlib import Path
from typing import Any

from helppet_recordings.models import StoredObject
from helppet_recordings.storage.local.keys import Layout

__all__ = ["describes", "describing", "object_info", "read_sidecar", "sidecar"]


def sidecar(
    *,
    key: str,
    content_type: str,
    size: int,
    md5: str,
    sha256: str,
    status: os.stat_result,
    stored_at: dt.datetime,
) -> dict[str, Any]:
    """Build the sidecar of a file about to be committed (read back by ``head``).

    ``status`` is the file's ``fstat``: a sidecar describes exactly that file
    (inode, device, size, mtime), so a file replaced behind its back is not
    reported with this sidecar's checksums.
    """
    return {
        "key": key,
        "content_type": content_type,
        "size": size,
        "md5": md5,
        "sha256": sha256,
        "stored_at": stored_at.isoformat(),
        "inode": status.st_ino,
        "device": status.st_dev,
        "mtime_ns": status.st_mtime_ns,
    }


def read_sidecar(path: Path | None) -> tuple[bytes, dict[str, Any]]:
    """Return a sidecar's bytes and document; empty ones when there is none to read."""
    if path is None:
        return b"", {}
    try:
        raw = path.read_bytes()
        meta = json.loads(raw)
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError, ValueError):
        return b"", {}
    return (raw, meta) if isinstance(meta, dict) else (b"", {})


def describes(meta: dict[str, Any], inode: int, device: int, size: int, mtime_ns: int) -> bool:
    """Whether a sidecar describes exactly the file with this inode, device, size and mtime."""
    return (meta.get("inode"), meta.get("device"), meta.get("size"), meta.get("mtime_ns")) == (
        inode,
        device,
        size,
        mtime_ns,
    )


def describing(
    data_path: Path, sidecars: list[dict[str, Any]], *, etag: str | None, size: int
) -> dict[str, Any] | None:
    """Return the one of ``sidecars`` describing ``data_path``'s file, of ``etag`` and ``size``.

    None when there is no regular file there, or no sidecar describes it so.
    """
    try:
        status = data_path.lstat()
    except (FileNotFoundError, NotADirectoryError):
        return None
    if not stat.S_ISREG(status.st_mode) or status.st_size != size:
        return None
    described = (status.st_ino, status.st_dev, status.st_size, status.st_mtime_ns)
    for meta in sidecars:
        if describes(meta, *described) and meta.get("md5") == etag:
            return meta
    return None


def object_info(
    layout: Layout, key: str, status: os.stat_result, meta_path: Path
) -> StoredObject | None:
    """Return what the sidecar of exactly ``status``'s file says (current, else legacy).

    ``meta_path`` is ``key``'s sidecar path in ``layout``. None when neither
    sidecar describes that file.
    """
    info = _info_from(key, status, meta_path)
    if info is None:
        legacy = layout.legacy_sidecar(key)
        if legacy is not None:
            info = _info_from(key, status, legacy)
    return info


def _info_from(key: str, status: os.stat_result, meta_path: Path) -> StoredObject | None:
    """Read the sidecar; None unless it describes exactly the file ``status`` describes."""
    _, meta = read_sidecar(meta_path)
    if not describes(meta, status.st_ino, status.st_dev, status.st_size, status.st_mtime_ns):
        return None
    stored_at = meta.get("stored_at")
    return StoredObject(
        key=key,
        size=status.st_size,
        content_type=meta.get("content_type"),
        etag=meta.get("md5"),
        sha256=meta.get("sha256"),
        server_side_encryption=None,
        last_modified=dt.datetime.fromisoformat(stored_at) if isinstance(stored_at, str) else None,
    )
