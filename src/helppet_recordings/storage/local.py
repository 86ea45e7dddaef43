"""LocalStorage: recordings on the local filesystem, reached through S3-like signed tickets.

A ticket looks like an S3 presigned POST: ``upload_url`` plus ``upload_fields``
(``key``, ``Content-Type``, ``policy``, ``signature``). The policy is base64url
JSON naming the bucket, the exact key, the exact content type, the size range
1..max and the expiry; the signature is HMAC-SHA256 of the policy under the
storage's secret. Download URLs carry an expiry, the response content type and
filename, and an HMAC over all of them and the key. Nothing is trusted that the
secret did not sign.

Receiving uploads and serving downloads over HTTP is the job of
:mod:`helppet_recordings.storage.local_receiver`; this module holds the
filesystem, the signing and the verification, and needs only the standard
library.

On disk, under ``root``::

    objects/<key>          the object's bytes, exactly as uploaded
    meta/<key>.json        its sidecar: content type, size, MD5 (the ETag), SHA-256, ...
    .incoming/             uploads in progress; each is moved into place atomically

A key is a relative path of ``/``-separated segments; see :func:`check_key`.
No key, however crafted, reaches a path outside ``root``.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import datetime as dt
import errno
import hashlib
import hmac
import json
import math
import os
import secrets
import stat
import threading
import time
import unicodedata
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any, Final, Self, TypeVar

import attrs

from helppet_recordings.models import StoredObject, UploadTicket
from helppet_recordings.storage._http import content_disposition

__all__ = [
    "DEFAULT_BASE_URL",
    "DownloadGrant",
    "LocalStorage",
    "LocalStorageRefusal",
    "StagedUpload",
    "UploadPolicy",
    "check_key",
]

DEFAULT_BASE_URL: Final = "http://127.0.0.1:8000/local-storage"
"""Where the example app serves LocalStorage's upload and download routes."""

MIN_SECRET_LENGTH: Final = 16
"""Shortest accepted signing secret, in characters (str) or bytes (bytes)."""

MAX_KEY_BYTES: Final = 1024
"""Longest accepted key in UTF-8 bytes (the S3 limit)."""

MAX_SEGMENT_BYTES: Final = 255
"""Longest accepted key segment in UTF-8 bytes (the usual file name limit)."""

STALE_STAGING_SECONDS: Final = 24 * 60 * 60
"""Staged uploads older than this are debris of a crashed process and are removed."""

PARALLEL_DIGEST_BYTES: Final = 128 * 1024
"""Pieces at least this long are hashed in worker threads, in parallel with the disk write."""

_POLICY_VERSION: Final = 1
_UPLOAD_CONTEXT: Final = b"helppet-local-upload-v1\n"
_DOWNLOAD_CONTEXT: Final = b"helppet-local-download-v1\n"
_SIGNATURE_HEX_LENGTH: Final = 64
_ALLOWED_FIELDS: Final = frozenset({"key", "content-type", "policy", "signature"})
_IGNORED_FIELD_PREFIX: Final = "x-ignore-"
_READ_ATTEMPTS: Final = 5
_READ_RETRY_SECONDS: Final = 0.01
_META_SUFFIX: Final = ".json"
_STAGING_SUFFIX: Final = ".part"


class LocalStorageRefusal(Exception):  # noqa: N818 - it is an answer, not a failure of ours
    """A request LocalStorage refuses, with the S3 error an HTTP adapter answers with.

    ``status`` is the HTTP status, ``code`` the S3 error code (``AccessDenied``,
    ``SignatureDoesNotMatch``, ``EntityTooLarge``, ...), ``extra`` further
    elements of the S3 error document.
    """

    def __init__(self, status: int, code: str, message: str, **extra: str) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra
        super().__init__(f"{status} {code}: {message}")


@attrs.frozen(kw_only=True)
class UploadPolicy:
    """What a verified upload ticket allows: one object at ``key`` of ``content_type``."""

    bucket: str
    key: str
    content_type: str
    min_size: int
    max_size: int
    expires_at: int
    """Unix time after which the ticket is refused."""


@attrs.frozen(kw_only=True)
class DownloadGrant:
    """A verified download URL: which object, and how to present it."""

    key: str
    content_type: str
    filename: str
    expires_at: int

    @property
    def content_disposition(self) -> str:
        """The ``attachment`` Content-Disposition naming ``filename``."""
        return content_disposition(self.filename)


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


_FORBIDDEN_CATEGORIES: Final = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


class LocalStorage:
    """Recordings as files under ``root``, uploaded and downloaded through signed URLs.

    ``base_url`` is where an HTTP adapter routes ``POST {base_url}/upload`` and
    ``GET {base_url}/download/{key}`` to
    :mod:`~helppet_recordings.storage.local_receiver`. ``secret`` (at least 16
    characters; keep it out of source control) signs tickets and download
    URLs: every process serving the same ``root`` must share it. ``bucket``
    is the name reported in tickets and records.

    With ``fsync=True`` (the default) an upload is flushed to disk before it
    is moved into place and acknowledged. ``clock`` returns Unix time and
    exists for tests.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        base_url: str = DEFAULT_BASE_URL,
        secret: str | bytes | None = None,
        *,
        bucket: str = "local",
        fsync: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._secret = _check_secret(secret)
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            msg = "base_url must be an http:// or https:// URL"
            raise ValueError(msg)
        if not bucket or "/" in bucket:
            msg = "bucket must be a non-empty name without '/'"
            raise ValueError(msg)
        self._base_url = base_url.rstrip("/")
        self._bucket = bucket
        self._fsync = fsync
        self._clock = clock
        self._root = Path(root).resolve()
        self._objects = self._root / "objects"
        self._meta = self._root / "meta"
        self._staging = self._root / ".incoming"
        for directory in (self._objects, self._meta, self._staging):
            directory.mkdir(parents=True, exist_ok=True)
        self._purge_stale_staging()

    # ------------------------------------------------------------------------ the port

    @property
    def bucket(self) -> str:
        """The bucket name reported in tickets and records."""
        return self._bucket

    @property
    def root(self) -> Path:
        """The directory everything is kept under (absolute)."""
        return self._root

    @property
    def base_url(self) -> str:
        """The URL the upload and download routes are served under (no trailing slash)."""
        return self._base_url

    @property
    def upload_url(self) -> str:
        """Where clients POST uploads."""
        return f"{self._base_url}/upload"

    def create_upload(
        self, *, key: str, content_type: str, max_size: int, expires_in: int
    ) -> UploadTicket:
        """Sign a POST upload of 1 to ``max_size`` bytes of ``content_type`` at ``key``.

        Raises ``ValueError`` for an unsafe key or a nonsensical limit.
        """
        check_key(key)
        _check_positive(max_size, "max_size")
        _check_positive(expires_in, "expires_in")
        _check_header_text(content_type, "content_type")
        expires_at = math.floor(self._clock()) + expires_in
        document = {
            "v": _POLICY_VERSION,
            "bucket": self._bucket,
            "key": key,
            "content_type": content_type,
            "min": 1,
            "max": max_size,
            "exp": expires_at,
            "expiration": dt.datetime.fromtimestamp(expires_at, dt.UTC).isoformat(),
        }
        policy = _b64encode(json.dumps(document, separators=(",", ":"), sort_keys=True))
        return UploadTicket(
            url=self.upload_url,
            fields={
                "key": key,
                "Content-Type": content_type,
                "policy": policy,
                "signature": self._sign(_UPLOAD_CONTEXT + policy.encode("ascii")),
            },
            key=key,
            bucket=self._bucket,
            expires_in=expires_in,
            max_size=max_size,
        )

    def create_download_url(
        self, *, key: str, expires_in: int, content_type: str, filename: str
    ) -> str:
        """Sign a GET of ``key`` served as ``content_type``, as an attachment named ``filename``."""
        check_key(key)
        _check_positive(expires_in, "expires_in")
        _check_header_text(content_type, "content_type")
        if not isinstance(filename, str) or not filename:
            msg = "filename must be a non-empty string"
            raise ValueError(msg)
        expires_at = math.floor(self._clock()) + expires_in
        query = urllib.parse.urlencode(
            {
                "expires": str(expires_at),
                "ct": content_type,
                "fn": filename,
                "sig": self._download_signature(key, expires_at, content_type, filename),
            },
            quote_via=urllib.parse.quote,
        )
        return f"{self._base_url}/download/{urllib.parse.quote(key, safe='/')}?{query}"

    def object_url(self, key: str) -> str:
        """Return ``local://bucket/key``: names the object, grants nothing."""
        return f"local://{self._bucket}/{key}"

    def head(self, key: str) -> StoredObject | None:
        """Return the stored object's size, type and MD5 ETag, or None when there is none."""
        try:
            data_path, meta_path = self._paths(key)
        except ValueError:
            return None
        found = self._read(key, data_path, meta_path)
        return None if found is None else found[1]

    def read_range(self, key: str, *, offset: int, length: int) -> bytes | None:
        """Return up to ``length`` bytes of a complete object from ``offset``, or None."""
        opened = self.open_object(key)
        if opened is None:
            return None
        handle, _ = opened
        with handle:
            handle.seek(offset)
            return handle.read(length)

    def delete(self, key: str) -> None:
        """Remove the object and its sidecar; a missing object is not an error."""
        try:
            data_path, meta_path = self._paths(key)
        except ValueError:
            return
        for path in (meta_path, data_path):
            with contextlib.suppress(FileNotFoundError, NotADirectoryError):
                path.unlink()
        self._prune(data_path.parent, self._objects)
        self._prune(meta_path.parent, self._meta)

    def iter_objects(self, prefix: str) -> Iterator[StoredObject]:
        """Yield every complete object whose key starts with ``prefix``, in ascending key order.

        Keys compare as strings (code point order), as the port requires.
        """
        directory, _, _ = prefix.rpartition("/")
        start, start_key = self._objects, ""
        if directory:
            try:
                start = self._objects.joinpath(*check_key(directory))
            except ValueError:
                return
            start_key = directory + "/"
        if self._contained(start, self._objects):
            yield from self._walk(start, start_key, prefix)

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
                try:
                    data_path, meta_path = self._paths(key)
                except ValueError:
                    continue
                found = self._read(key, data_path, meta_path)
                if found is not None:
                    yield found[1]

    # ------------------------------------------------------ used by the HTTP receiver

    def verify_upload(self, fields: Mapping[str, str]) -> UploadPolicy:
        """Check an upload's form fields against its signed policy, as S3 does.

        ``fields`` maps lower-case field names to values, as they came before
        the file. Raises :class:`LocalStorageRefusal`: 400 ``InvalidArgument``
        for a missing field, 403 ``SignatureDoesNotMatch`` for a policy the
        secret did not sign, 403 ``AccessDenied`` for an expired policy, a
        key, content type or bucket the policy does not allow, or a field it
        does not cover.
        """
        for name in ("key", "policy", "signature"):
            if name not in fields:
                raise LocalStorageRefusal(
                    400,
                    "InvalidArgument",
                    f"Bucket POST must contain a field named '{name}'. "
                    "If it is specified, please check the order of the fields.",
                    ArgumentName=name,
                )
        policy_text, signature = fields["policy"], fields["signature"]
        if not _signature_matches(
            signature, self._sign(_UPLOAD_CONTEXT + policy_text.encode("utf-8"))
        ):
            raise LocalStorageRefusal(
                403,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided.",
            )
        policy = _parse_policy(policy_text)
        if policy.bucket != self._bucket:
            raise _condition_failed("bucket", policy.bucket)
        if math.floor(self._clock()) > policy.expires_at:
            raise LocalStorageRefusal(
                403, "AccessDenied", "Invalid according to Policy: Policy expired."
            )
        if fields["key"] != policy.key:
            raise _condition_failed("key", policy.key)
        if fields.get("content-type") != policy.content_type:
            raise _condition_failed("Content-Type", policy.content_type)
        extra = sorted(
            name
            for name in fields
            if name not in _ALLOWED_FIELDS and not name.startswith(_IGNORED_FIELD_PREFIX)
        )
        if extra:
            raise LocalStorageRefusal(
                403,
                "AccessDenied",
                f"Invalid according to Policy: Extra input fields: {', '.join(extra)}",
            )
        try:
            self._paths(policy.key)
        except ValueError:
            raise _condition_failed("key", policy.key) from None
        return policy

    def stage(self, policy: UploadPolicy) -> StagedUpload:
        """Open a temporary file for an upload ``policy`` allows; commit it when complete."""
        data_path, meta_path = self._paths(policy.key)
        return StagedUpload(
            policy=policy,
            staging_dir=self._staging,
            data_path=data_path,
            meta_path=meta_path,
            storage=self,
        )

    def verify_download(self, key: str, query: Mapping[str, str]) -> DownloadGrant:
        """Check a download URL's query (``expires``, ``ct``, ``fn``, ``sig``) for ``key``.

        Raises :class:`LocalStorageRefusal` 403: ``AccessDenied`` when a
        parameter is missing or the URL expired, ``SignatureDoesNotMatch``
        when anything signed was changed.
        """
        missing = [name for name in ("expires", "ct", "fn", "sig") if not query.get(name)]
        if missing:
            raise LocalStorageRefusal(
                403,
                "AccessDenied",
                "Query-string authentication requires the expires, ct, fn and sig parameters",
            )
        expires, content_type = query["expires"], query["ct"]
        filename, signature = query["fn"], query["sig"]
        if not expires.isascii() or not expires.isdigit() or len(expires) > 12:
            raise LocalStorageRefusal(403, "AccessDenied", "Invalid expires parameter")
        expires_at = int(expires)
        expected = self._download_signature(key, expires_at, content_type, filename)
        if not _signature_matches(signature, expected):
            raise LocalStorageRefusal(
                403,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided.",
            )
        if math.floor(self._clock()) > expires_at:
            raise LocalStorageRefusal(403, "AccessDenied", "Request has expired")
        return DownloadGrant(
            key=key, content_type=content_type, filename=filename, expires_at=expires_at
        )

    def open_object(self, key: str) -> tuple[IO[bytes], StoredObject] | None:
        """Open a complete object for reading: its open file and what is known of it.

        Returns None when there is no such object. The caller closes the file.
        """
        try:
            data_path, meta_path = self._paths(key)
        except ValueError:
            return None
        for _ in range(_READ_ATTEMPTS):
            try:
                handle = _open_regular(data_path)
            except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
                return None
            try:
                info = self._object_info(key, os.fstat(handle.fileno()), meta_path)
            except BaseException:
                handle.close()
                raise
            if info is not None:
                return handle, info
            handle.close()
            time.sleep(_READ_RETRY_SECONDS)
        return None

    # -------------------------------------------------------------------------- internals

    def _sign(self, message: bytes) -> str:
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def _download_signature(
        self, key: str, expires_at: int, content_type: str, filename: str
    ) -> str:
        canonical = json.dumps(
            [self._bucket, key, expires_at, content_type, filename], separators=(",", ":")
        )
        return self._sign(_DOWNLOAD_CONTEXT + canonical.encode("ascii"))

    def _paths(self, key: str) -> tuple[Path, Path]:
        """Return the data and sidecar paths of ``key``; raise ``ValueError`` if unsafe."""
        segments = check_key(key)
        data_path = self._objects.joinpath(*segments)
        meta_path = self._meta.joinpath(*segments[:-1], segments[-1] + _META_SUFFIX)
        if not (
            self._contained(data_path, self._objects) and self._contained(meta_path, self._meta)
        ):
            msg = "the key resolves outside the storage root"
            raise ValueError(msg)
        return data_path, meta_path

    @staticmethod
    def _contained(path: Path, base: Path) -> bool:
        """Whether ``path``, with every symbolic link resolved, lies inside ``base``."""
        return path.resolve().is_relative_to(base)

    def _read(self, key: str, data_path: Path, meta_path: Path) -> tuple[Path, StoredObject] | None:
        for _ in range(_READ_ATTEMPTS):
            try:
                status = data_path.lstat()
            except (FileNotFoundError, NotADirectoryError):
                return None
            if not stat.S_ISREG(status.st_mode):
                return None
            info = self._object_info(key, status, meta_path)
            if info is not None:
                return data_path, info
            # A commit or delete is between its two steps (or crashed there): look again.
            time.sleep(_READ_RETRY_SECONDS)
        return None

    @staticmethod
    def _object_info(key: str, status: os.stat_result, meta_path: Path) -> StoredObject | None:
        """Read the sidecar; None unless it describes exactly the file ``status`` describes."""
        try:
            meta = json.loads(meta_path.read_bytes())
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError, ValueError):
            return None
        if not isinstance(meta, dict) or (
            meta.get("inode"),
            meta.get("device"),
            meta.get("size"),
            meta.get("mtime_ns"),
        ) != (status.st_ino, status.st_dev, status.st_size, status.st_mtime_ns):
            return None
        stored_at = meta.get("stored_at")
        return StoredObject(
            key=key,
            size=status.st_size,
            content_type=meta.get("content_type"),
            etag=meta.get("md5"),
            sha256=meta.get("sha256"),
            server_side_encryption=None,
            last_modified=dt.datetime.fromisoformat(stored_at)
            if isinstance(stored_at, str)
            else None,
        )

    def _commit(self, staged: StagedUpload, temp_path: Path, meta: dict[str, Any]) -> None:
        """Move a complete, flushed upload into place: the data first, then its sidecar."""
        meta_temp = self._staging / f"{secrets.token_hex(16)}{_META_SUFFIX}{_STAGING_SUFFIX}"
        try:
            with _create_exclusive(meta_temp) as handle:
                handle.write(json.dumps(meta, sort_keys=True).encode("utf-8"))
                handle.flush()
                if self._fsync:
                    os.fsync(handle.fileno())
            _replace_into(temp_path, staged.data_path)
            _replace_into(meta_temp, staged.meta_path)
        finally:
            meta_temp.unlink(missing_ok=True)
        if self._fsync:
            _fsync_directory(staged.data_path.parent)
            _fsync_directory(staged.meta_path.parent)

    def _prune(self, directory: Path, base: Path) -> None:
        """Remove empty directories from ``directory`` up to, not including, ``base``."""
        while directory != base and directory.is_relative_to(base):
            try:
                directory.rmdir()
            except OSError:
                return
            directory = directory.parent

    def _purge_stale_staging(self) -> None:
        cutoff = time.time() - STALE_STAGING_SECONDS
        for entry in self._staging.iterdir():
            with contextlib.suppress(OSError):
                if entry.name.endswith(_STAGING_SUFFIX) and entry.lstat().st_mtime < cutoff:
                    entry.unlink()


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
        storage: LocalStorage,
    ) -> None:
        self.policy = policy
        self.data_path = data_path
        self.meta_path = meta_path
        self.size = 0
        self._storage = storage
        self._digests = _Digests()
        self._path: Path | None = staging_dir / f"{secrets.token_hex(16)}{_STAGING_SUFFIX}"
        self._file: IO[bytes] | None = _create_exclusive(self._path)

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
            raise LocalStorageRefusal(
                400,
                "EntityTooLarge",
                "Your proposed upload exceeds the maximum allowed size",
                MaxSizeAllowed=str(self.policy.max_size),
            )
        self._digests.update(data)  # hashed in worker threads while this thread writes
        view = memoryview(data)
        while view:
            written = self._file.write(view)
            if not written:
                raise OSError(errno.EIO, "short write to the staged upload")
            view = view[written:]
        self.size = size

    def commit(self) -> StoredObject:
        """Flush the file and move it into place with its sidecar; return the stored object.

        Raises ``EntityTooSmall`` (and discards) below the policy's minimum size.
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
        handle, path = self._file, self._path
        try:
            handle.flush()
            if self._storage._fsync:
                os.fsync(handle.fileno())
            status = os.fstat(handle.fileno())
            handle.close()
            stored_at = dt.datetime.now(dt.UTC)
            md5, sha256 = self._digests.hexdigests()
            meta = {
                "key": self.policy.key,
                "content_type": self.policy.content_type,
                "size": self.size,
                "md5": md5,
                "sha256": sha256,
                "stored_at": stored_at.isoformat(),
                "inode": status.st_ino,
                "device": status.st_dev,
                "mtime_ns": status.st_mtime_ns,
            }
            self._storage._commit(self, path, meta)
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


class _Digests:
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
        pending, self._pending = self._pending, None
        if pending is not None:
            for future in pending:
                future.result()

    def hexdigests(self) -> tuple[str, str]:
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


# ----------------------------------------------------------------------------- helpers


def _check_secret(secret: object) -> bytes:
    if isinstance(secret, str):
        value = secret.encode("utf-8")
        long_enough = len(secret) >= MIN_SECRET_LENGTH
    elif isinstance(secret, bytes):
        value = secret
        long_enough = len(secret) >= MIN_SECRET_LENGTH
    else:
        msg = "secret must be a str or bytes of at least 16 characters"
        raise ValueError(msg)
    if not long_enough:
        msg = f"secret must be at least {MIN_SECRET_LENGTH} characters long"
        raise ValueError(msg)
    return value


def _check_positive(value: object, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        msg = f"{name} must be a positive integer"
        raise ValueError(msg)


def _check_header_text(value: object, name: str) -> None:
    if (
        not isinstance(value, str)
        or not value
        or len(value) > 255
        or not all(" " <= ch <= "~" for ch in value)
    ):
        msg = f"{name} must be 1 to 255 printable ASCII characters"
        raise ValueError(msg)


def _b64encode(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode("utf-8")).decode("ascii").rstrip("=")


def _signature_matches(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode("ascii"))


def _condition_failed(field: str, expected: object) -> LocalStorageRefusal:
    condition = json.dumps(["eq", f"${field}", expected])
    return LocalStorageRefusal(
        403, "AccessDenied", f"Invalid according to Policy: Policy Condition failed: {condition}"
    )


def _parse_policy(text: str) -> UploadPolicy:
    """Decode a policy the secret signed (so malformed means a bug or a leaked secret)."""
    try:
        padded = text + "=" * (-len(text) % 4)
        document = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
        if not isinstance(document, dict) or document.get("v") != _POLICY_VERSION:
            raise TypeError
        policy = UploadPolicy(
            bucket=_typed(document, "bucket", str),
            key=_typed(document, "key", str),
            content_type=_typed(document, "content_type", str),
            min_size=_typed(document, "min", int),
            max_size=_typed(document, "max", int),
            expires_at=_typed(document, "exp", int),
        )
    except (ValueError, TypeError, UnicodeError, binascii.Error):
        raise LocalStorageRefusal(
            400, "InvalidPolicyDocument", "Invalid Policy: Invalid JSON."
        ) from None
    return policy


_T = TypeVar("_T")


def _typed(document: dict[str, Any], name: str, kind: type[_T]) -> _T:
    value = document.get(name)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise TypeError(name)
    return value


def _create_exclusive(path: Path) -> IO[bytes]:
    """Create ``path`` (which must not exist), readable by the owner only, for writing."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags, 0o600)
    try:
        return os.fdopen(fd, "wb", buffering=0)
    except BaseException:
        os.close(fd)
        raise


def _open_regular(path: Path) -> IO[bytes]:
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


def _replace_into(source: Path, target: Path) -> None:
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


def _fsync_directory(directory: Path) -> None:
    if os.name != "posix":  # pragma: no cover - directories cannot be opened elsewhere
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
