"""Which keys are safe, and where a key's files live under the storage root.

A key is a relative path of ``/``-separated segments; see :func:`check_key`.
:class:`Layout` maps a key to its data file and its sidecar, and refuses any
key whose path, symbolic links resolved, would leave its directory (or
cannot be resolved: a loop of links). No key, however crafted, reaches a
path outside ``root``.

The sidecar tree mirrors the object tree name for name, so two keys collide
in one exactly when they collide in the other: when one key is another
followed by ``/`` (a file cannot also be a directory). Stores written before
``sidecars/`` existed kept each sidecar at ``meta/<key>.json``, where ``x/a``
and ``x/a.json/b`` collided and a 251-byte last segment was too long a name;
those sidecars are still read (:meth:`Layout.legacy_sidecar`).
"""

from __future__ import annotations

import errno
import os
import unicodedata
from pathlib import Path
from typing import Final

__all__ = [
    "MAX_KEY_BYTES",
    "MAX_SEGMENT_BYTES",
    "META_SUFFIX",
    "Layout",
    "check_key",
    "contained",
]

MAX_KEY_BYTES: Final = 1024
"""Longest accepted key in UTF-8 bytes (the S3 limit)."""

MAX_SEGMENT_BYTES: Final = 255
"""Longest accepted key segment in UTF-8 bytes (the usual file name limit)."""

META_SUFFIX: Final = ".json"
"""What a legacy sidecar's name (``meta/<key>.json``) adds to its object's name."""

_FORBIDDEN_CATEGORIES: Final = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def check_key(key: object) -> tuple[str, ...]:
    """Return the segments of a safe storage key; raise ``ValueError`` for any other.

    A safe key is a string of at most 1024 UTF-8 bytes made of ``/``-separated
    segments, each 1 to 255 bytes, none starting with ``.`` (so no ``.``,
    ``..`` or hidden names), with no backslash, NUL or other control or
    invisible formatting character. It cannot be absolute.
    """
    if not isinstance(key, str):
        msg = "a key must be a string"
        raise ValueError(msg)
    try:
        encoded = key.encode("utf-8")
    except UnicodeEncodeError:
        msg = "a key must be valid Unicode text"
        raise ValueError(msg) from None
    if not key or len(encoded) > MAX_KEY_BYTES:
        msg = f"a key must be 1 to {MAX_KEY_BYTES} bytes of UTF-8"
        raise ValueError(msg)
    if "\\" in key or any(unicodedata.category(ch) in _FORBIDDEN_CATEGORIES for ch in key):
        msg = "a key must not contain backslashes or control characters"
        raise ValueError(msg)
    segments = tuple(key.split("/"))
    for segment in segments:
        if not segment:
            msg = "a key must be relative and have no empty segments"
            raise ValueError(msg)
        if segment.startswith("."):
            msg = "a key segment must not start with '.'"
            raise ValueError(msg)
        if len(segment.encode("utf-8")) > MAX_SEGMENT_BYTES:
            msg = f"a key segment must be at most {MAX_SEGMENT_BYTES} bytes"
            raise ValueError(msg)
    return segments


class Layout:
    """The directories under ``root`` and the paths of each key's files.

    ``objects/<key>`` holds an object's bytes, ``sidecars/<key>`` its
    sidecar, ``.incoming/`` the uploads still being received, ``.multipart/``
    one directory per unfinished multipart upload (outside every key's path;
    made with the first multipart upload). ``meta/`` holds the sidecars of a
    store written before ``sidecars/`` existed; nothing new is written there.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve()
        self.objects = self.root / "objects"
        self.sidecars = self.root / "sidecars"
        self.legacy_meta = self.root / "meta"
        self.staging = self.root / ".incoming"
        self.multipart = self.root / ".multipart"

    def create(self) -> None:
        """Create the three directories of objects (and ``root``) if they are missing."""
        for directory in (self.objects, self.sidecars, self.staging):
            directory.mkdir(parents=True, exist_ok=True)

    def paths(self, key: str) -> tuple[Path, Path]:
        """Return the data and sidecar paths of ``key``; raise ``ValueError`` if unsafe."""
        segments = check_key(key)
        data_path = self.objects.joinpath(*segments)
        sidecar_path = self.sidecars.joinpath(*segments)
        if not (contained(data_path, self.objects) and contained(sidecar_path, self.sidecars)):
            msg = "the key's path does not resolve inside the storage root"
            raise ValueError(msg)
        return data_path, sidecar_path

    def legacy_sidecar(self, key: str) -> Path | None:
        """Where a store of the earlier layout kept ``key``'s sidecar (``meta/<key>.json``).

        None when it cannot have kept one there: an unsafe key, a last
        segment too long for the suffix, a path that resolves elsewhere.
        """
        try:
            segments = check_key(key)
        except ValueError:
            return None
        name = segments[-1] + META_SUFFIX
        if len(name.encode("utf-8")) > MAX_SEGMENT_BYTES:
            return None
        path = self.legacy_meta.joinpath(*segments[:-1], name)
        return path if contained(path, self.legacy_meta) else None


def contained(path: Path, base: Path) -> bool:
    """Whether ``path``, with every symbolic link resolved, lies inside ``base``.

    A path that cannot be resolved (a loop of symbolic links) is not: it is
    refused as a link out of ``base`` is.
    """
    # Not Path.resolve: before Python 3.13 it raises RuntimeError for a loop, naming the
    # path. realpath returns the path still holding the loop, which stat then refuses.
    try:
        resolved = Path(os.path.realpath(path))
    except OSError:
        return False
    try:
        resolved.stat()
    except OSError as exc:  # nothing there yet is fine: where it would be is what counts
        if exc.errno == errno.ELOOP:
            return False
    return resolved.is_relative_to(base)
