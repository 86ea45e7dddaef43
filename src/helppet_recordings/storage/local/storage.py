"""LocalStorage: the storage port on a local filesystem, with S3-like signed tickets."""

from __future__ import annotations

import os
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO, Final

from helppet_recordings.models import StoredObject, UploadTicket
from helppet_recordings.storage.local.arguments import (
    check_header_text,
    check_positive,
    check_secret,
    check_sha256,
)
from helppet_recordings.storage.local.keys import Layout, check_key
from helppet_recordings.storage.local.multipart import LocalMultipart
from helppet_recordings.storage.local.objects import ObjectStore
from helppet_recordings.storage.local.parts import PartStore
from helppet_recordings.storage.local.refusal import condition_failed
from helppet_recordings.storage.local.signing import DownloadGrant, Signer, UploadPolicy
from helppet_recordings.storage.local.staging import (
    STALE_STAGING_SECONDS,
    StagedUpload,
    purge_stale_staging,
    recover_sidecars,
)
from helppet_recordings.storage.local.turns import commit_turn

__all__ = ["DEFAULT_BASE_URL", "LocalStorage"]

DEFAULT_BASE_URL: Final = "http://127.0.0.1:8000/local-storage"
"""Where the example app serves LocalStorage's upload and download routes."""


class LocalStorage(LocalMultipart):
    """Recordings as files under ``root``, uploaded and downloaded through signed URLs.

    ``base_url`` is where an HTTP adapter routes ``POST {base_url}/upload``
    (to :class:`~helppet_recordings.storage.local.LocalUploadReceiver`),
    ``PUT {base_url}/part/{key}`` (the parts of multipart uploads, to
    :class:`~helppet_recordings.storage.local.LocalPartReceiver`) and
    ``GET {base_url}/download/{key}`` (to
    :func:`~helppet_recordings.storage.local.serve_download`). ``secret`` (at
    least 16 characters; keep it out of source control) signs tickets and
    download URLs: every process serving the same ``root`` must share it.
    ``bucket`` is the name reported in tickets and records.

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
        secret_bytes = check_secret(secret)
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            msg = "base_url must be an http:// or https:// URL"
            raise ValueError(msg)
        if not bucket or "/" in bucket:
            msg = "bucket must be a non-empty name without '/'"
            raise ValueError(msg)
        self._base_url = base_url.rstrip("/")
        self._bucket = bucket
        self._signer = Signer(secret_bytes, bucket, clock)
        self._layout = Layout(root)
        self._layout.create()
        self._store = ObjectStore(self._layout, fsync=fsync)
        self._parts = PartStore(self._layout, fsync=fsync, clock=clock)
        with commit_turn(self._layout):  # no commit of another process is between its moves
            recover_sidecars(self._layout, fsync=fsync)
            purge_stale_staging(self._layout)
        self._parts.purge_debris(STALE_STAGING_SECONDS)

    # ------------------------------------------------------------------------ the port

    @property
    def bucket(self) -> str:
        """The bucket name reported in tickets and records."""
        return self._bucket

    @property
    def root(self) -> Path:
        """The directory everything is kept under (absolute)."""
        return self._layout.root

    @property
    def base_url(self) -> str:
        """The URL the upload and download routes are served under (no trailing slash)."""
        return self._base_url

    @property
    def upload_url(self) -> str:
        """Where clients POST uploads."""
        return f"{self._base_url}/upload"

    @property
    def pins_checksums(self) -> bool:
        """True: a pinned ticket may name the final key (see ``ChecksumPinning``).

        The receiver refuses a body with another SHA-256, and the ETag is the
        MD5 of the bytes, so identical bytes written again keep their ETag.
        """
        return True

    def create_upload(
        self,
        *,
        key: str,
        content_type: str,
        max_size: int,
        expires_in: int,
        sha256: str | None = None,
    ) -> UploadTicket:
        """Sign a POST upload of 1 to ``max_size`` bytes of ``content_type`` at ``key``.

        With ``sha256`` (64 hex characters) the policy also pins the body's
        SHA-256 and the ticket carries S3's ``x-amz-checksum-algorithm`` and
        ``x-amz-checksum-sha256`` fields: the receiver refuses any other body
        with 400 ``BadDigest``. Raises ``ValueError`` for an unsafe key, a
        nonsensical limit or a ``sha256`` that is not a digest.
        """
        check_key(key)
        check_positive(max_size, "max_size")
        check_positive(expires_in, "expires_in")
        check_header_text(content_type, "content_type")
        check_sha256(sha256)
        fields = self._signer.upload_fields(
            key=key,
            content_type=content_type,
            max_size=max_size,
            expires_in=expires_in,
            sha256=sha256,
        )
        return UploadTicket(
            url=self.upload_url,
            fields=fields,
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
        check_positive(expires_in, "expires_in")
        check_header_text(content_type, "content_type")
        if not isinstance(filename, str) or not filename:
            msg = "filename must be a non-empty string"
            raise ValueError(msg)
        query = self._signer.download_query(
            key=key, expires_in=expires_in, content_type=content_type, filename=filename
        )
        return f"{self._base_url}/download/{urllib.parse.quote(key, safe='/')}?{query}"

    def object_url(self, key: str) -> str:
        """Return ``local://bucket/key``: names the object, grants nothing."""
        return f"local://{self._bucket}/{key}"

    def head(self, key: str) -> StoredObject | None:
        """Return the stored object's size, type and MD5 ETag, or None when there is none."""
        return self._store.head(key)

    def read_range(self, key: str, *, offset: int, length: int) -> bytes | None:
        """Return up to ``length`` bytes of a complete object from ``offset``, or None."""
        opened = self.open_object(key)
        if opened is None:
            return None
        handle, _ = opened
        with handle:
            handle.seek(offset)
            return handle.read(length)

    def read_pinned(self, key: str, *, etag: str, offset: int, length: int) -> bytes | None:
        """Return up to ``length`` bytes from ``offset`` only if the object's ETag is ``etag``.

        The ETag compared is the sidecar's description of the very file that
        is read (a commit replaces the file, never writes into it), so the
        bytes are that object's. None when there is no object, or one with
        another ETag (``PinnedReads``).
        """
        opened = self.open_object(key)
        if opened is None:
            return None
        handle, stored = opened
        with handle:
            if stored.etag != etag:
                return None
            handle.seek(offset)
            return handle.read(length)

    def promote(
        self, source_key: str, target_key: str, *, expected: StoredObject
    ) -> StoredObject | None:
        """Move a verified object to its final key if it is unchanged (an atomic rename).

        Returns the target as :meth:`head` reports it, or None, moving nothing,
        when the source is gone or is no longer ``expected`` (a replayed upload).
        """
        return self._store.promote(source_key, target_key, expected)

    def delete(self, key: str) -> None:
        """Remove the object and its sidecar; a missing object is not an error."""
        self._store.delete(key)

    def iter_objects(self, prefix: str) -> Iterator[StoredObject]:
        """Yield every complete object whose key starts with ``prefix``, in ascending key order.

        Keys compare as strings (code point order), as the port requires.
        """
        return self._store.iter(prefix)

    # ------------------------------------------------------ used by the HTTP receiver

    def verify_upload(self, fields: Mapping[str, str], *, check_path: bool = True) -> UploadPolicy:
        """Check an upload's form fields against its signed policy, as S3 does.

        ``fields`` maps lower-case field names to values, as they came before
        the file. Raises :class:`LocalStorageRefusal`: 400 ``InvalidArgument``
        for a missing field, 403 ``SignatureDoesNotMatch`` for a policy the
        secret did not sign, 403 ``AccessDenied`` for an expired policy, a
        key, content type, checksum field or bucket the policy does not
        allow, or a field it does not cover (checksum fields included); a
        pinned SHA-256 is checked against the body when it is committed
        (400 ``BadDigest``). With ``check_path=False`` it does not touch the
        filesystem (an event loop may call it); :meth:`stage` then checks
        that the key's path stays inside the root.
        """
        policy = self._signer.verify_upload(fields)
        if check_path:
            try:
                self._layout.paths(policy.key)
            except ValueError:
                raise condition_failed("key", policy.key) from None
        return policy

    def stage(self, policy: UploadPolicy) -> StagedUpload:
        """Open a temporary file for an upload ``policy`` allows; commit it when complete.

        Raises ``ValueError`` if the key's path would leave the root.
        """
        data_path, meta_path = self._layout.paths(policy.key)
        return StagedUpload(
            policy=policy,
            staging_dir=self._layout.staging,
            data_path=data_path,
            meta_path=meta_path,
            store=self._store,
        )

    def verify_download(self, key: str, query: Mapping[str, str]) -> DownloadGrant:
        """Check a download URL's query (``expires``, ``ct``, ``fn``, ``sig``) for ``key``.

        Raises :class:`LocalStorageRefusal` 403: ``AccessDenied`` when a
        parameter is missing or the URL expired, ``SignatureDoesNotMatch``
        when anything signed was changed.
        """
        return self._signer.verify_download(key, query)

    def open_object(self, key: str) -> tuple[IO[bytes], StoredObject] | None:
        """Open a complete object for reading: its open file and what is known of it.

        Returns None when there is no such object. The caller closes the file.
        """
        return self._store.open(key)
