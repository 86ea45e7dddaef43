"""LocalStorage's multipart uploads: the storage side of resumable uploads, on disk.

Parts arrive as ``PUT {base_url}/part/{key}?uploadId=...&partNumber=...&size=...
&expires=...&sig=...`` (see :mod:`.part_receiver`) and are kept by
:class:`~helppet_recordings.storage.local.parts.PartStore` until completion
assembles them into the object (streamed into a temporary file while the
upload stays live, then moved onto the key with its sidecar as a POST upload
is, in the same turn of the upload's lock that takes the upload away: a reader
finds the upload or its object at every instant) or abort drops them. What S3
refuses at completion is refused here too, with the upload kept: an unknown
part or ETag (``InvalidPart``), parts out of order (``InvalidPartOrder``), a
part below 5 MiB that is not the last (``EntityTooSmall``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import secrets
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from helppet_recordings.errors import StorageError
from helppet_recordings.models import MultipartUploadInfo, StoredObject, StoredPart
from helppet_recordings.multipart import MAX_PART_SIZE, MAX_PARTS, MIN_PART_SIZE
from helppet_recordings.storage.local.arguments import check_header_text, check_positive
from helppet_recordings.storage.local.files import create_exclusive, write_all
from helppet_recordings.storage.local.keys import Layout, check_key
from helppet_recordings.storage.local.objects import STAGING_SUFFIX, ObjectStore
from helppet_recordings.storage.local.parts import PartStore, Upload
from helppet_recordings.storage.local.sidecars import sidecar
from helppet_recordings.storage.local.signing import PartGrant, Signer
from helppet_recordings.storage.local.staging import Digests

__all__ = ["LocalMultipart"]

_COPY_CHUNK = 1024 * 1024


class LocalMultipart:
    """Create, sign parts of, list, complete and abort multipart uploads under one root.

    Mixed into :class:`~helppet_recordings.storage.local.LocalStorage`, whose
    layout, object store, part store, signer and base URL it uses.
    """

    _base_url: str
    _layout: Layout
    _store: ObjectStore
    _parts: PartStore
    _signer: Signer

    def head(self, key: str) -> StoredObject | None:
        """Return what is known of ``key`` (implemented by the storage)."""
        raise NotImplementedError

    def create_multipart_upload(self, *, key: str, content_type: str) -> str:
        """Start a multipart upload of ``key``; return its upload id.

        The object completion assembles gets ``content_type`` and
        LocalStorage's encryption label (none: it stores files as they are).
        Raises ``ValueError`` for an unsafe key or content type.
        """
        self._layout.paths(key)
        check_header_text(content_type, "content_type")
        with _disk_errors():
            return self._parts.create(key, content_type)

    def sign_upload_part(
        self, *, key: str, upload_id: str, part_number: int, size: int, expires_in: int
    ) -> str:
        """Sign ``PUT {base_url}/part/{key}?...``: part ``part_number``, exactly ``size`` bytes.

        The URL carries the upload id, the part number, the size, the expiry
        and their HMAC, nothing else. Raises ``ValueError`` for an unsafe key
        or a part outside S3's limits.
        """
        check_key(key)
        check_header_text(upload_id, "upload_id")
        check_positive(expires_in, "expires_in")
        check_positive(part_number, "part_number")
        check_positive(size, "size")
        if part_number > MAX_PARTS or size > MAX_PART_SIZE:
            msg = f"part {part_number} of {size} bytes is outside S3's limits"
            raise ValueError(msg)
        query = self._signer.part_query(
            key=key, upload_id=upload_id, part_number=part_number, size=size, expires_in=expires_in
        )
        return f"{self._base_url}/part/{urllib.parse.quote(key, safe='/')}?{query}"

    def list_parts(self, *, key: str, upload_id: str) -> list[StoredPart]:
        """Return every part held for the upload (one per number, in order; ETag = MD5 hex).

        Raises ``StorageError`` (``storage_error="NoSuchUpload"``) when the
        upload is unknown, completed or aborted.
        """
        with _disk_errors():
            return self._parts.list_parts(key, upload_id)

    def complete_multipart_upload(
        self, *, key: str, upload_id: str, parts: Sequence[tuple[int, str]]
    ) -> StoredObject:
        """Assemble ``key`` from ``(part number, ETag)`` pairs; return the object as HEAD sees it.

        The pairs are checked against the parts held, under the upload's
        lock; the parts are then streamed into a temporary file while the
        upload stays live, and the object is committed and the upload taken
        in one turn of that lock (:meth:`PartStore.finish`): at every instant
        a reader finds the upload or its object. A refusal (``StorageError``:
        ``InvalidPartOrder``, ``InvalidPart`` also for a part replaced during
        the assembly, ``EntityTooSmall``; ``InternalError`` when the disk
        fails) keeps the upload as it was. ``NoSuchUpload`` once another
        completion or an abort took it. Afterwards the upload id is gone.
        """
        numbers = [number for number, _ in parts]
        if not parts or numbers != sorted(set(numbers)):
            raise StorageError(
                "The parts must be listed once each, in order", storage_error="InvalidPartOrder"
            )
        upload = self._parts.get(key, upload_id)
        with _disk_errors(), self._parts.locked(upload):
            files = _chosen(self._parts.parts(upload.directory), parts)
        data_path, meta_path = self._layout.paths(upload.key)
        temp = self._layout.staging / f"{secrets.token_hex(16)}{STAGING_SUFFIX}"
        try:
            meta = self._assemble(upload, files, temp)
            with _disk_errors():
                taken = self._parts.finish(
                    upload, lambda: self._store.commit(temp, data_path, meta_path, meta)
                )
        finally:
            temp.unlink(missing_ok=True)
        self._parts.remove(taken)
        stored = self.head(upload.key)
        if stored is None:
            raise StorageError(
                "The completed multipart upload is not in storage", storage_error="NoSuchKey"
            )
        return stored

    def abort_multipart_upload(self, *, key: str, upload_id: str) -> None:
        """Drop the upload and its parts; an upload already gone is not an error.

        A part still arriving for it is refused when it ends, and kept nowhere.
        """
        with _disk_errors():
            try:
                upload = self._parts.get(key, upload_id)
                taken = self._parts.take(upload)
            except StorageError:
                return  # already completed, aborted or never started
            self._parts.remove(taken)

    def list_multipart_uploads(self, *, prefix: str) -> list[MultipartUploadInfo]:
        """Return every unfinished upload whose key starts with ``prefix``, by key.

        ``initiated`` is when :meth:`create_multipart_upload` ran (UTC).
        """
        with _disk_errors():
            return self._parts.list_uploads(prefix)

    # -------------------------------------------------------- used by the HTTP receiver

    def verify_part(self, key: str, query: Mapping[str, str]) -> PartGrant:
        """Check a part URL's query for ``key`` (signature first, then expiry); no disk I/O.

        Raises :class:`~helppet_recordings.storage.local.LocalStorageRefusal`
        403: ``SignatureDoesNotMatch`` when anything signed was changed,
        ``AccessDenied`` when a parameter is missing or the URL expired.
        """
        return self._signer.verify_part(key, query)

    @property
    def part_store(self) -> PartStore:
        """The unfinished uploads on disk (for the part receiver)."""
        return self._parts

    def _assemble(self, upload: Upload, files: list[Path], temp: Path) -> dict[str, Any]:
        """Stream the parts into ``temp`` (flushed); return the sidecar that describes it.

        A part file gone since it was chosen was replaced (``InvalidPart``) or
        went with its upload (``NoSuchUpload``).
        """
        digests = Digests()
        size = 0
        try:
            with create_exclusive(temp) as out:
                for path in files:
                    with _part(self._parts, upload, path) as part:
                        while chunk := part.read(_COPY_CHUNK):
                            digests.update(chunk)
                            write_all(out, chunk)
                            size += len(chunk)
                digests.wait()
                if self._store.fsync:
                    os.fsync(out.fileno())
                status = os.fstat(out.fileno())
            md5, sha256 = digests.hexdigests()
        except OSError as exc:
            raise StorageError(
                "LocalStorage could not assemble the upload", storage_error="InternalError"
            ) from exc
        finally:
            digests.wait()
        return sidecar(
            key=upload.key,
            content_type=upload.content_type,
            size=size,
            md5=md5,
            sha256=sha256,
            status=status,
            stored_at=dt.datetime.now(dt.UTC),
        )


@contextlib.contextmanager
def _disk_errors() -> Iterator[None]:
    """Translate a failing disk (permissions, full, I/O) into ``StorageError``."""
    try:
        yield
    except OSError as exc:
        raise StorageError(
            "LocalStorage could not read or write its multipart uploads",
            storage_error="InternalError",
        ) from exc


def _part(parts: PartStore, upload: Upload, path: Path) -> IO[bytes]:
    """Open a chosen part file; ``InvalidPart`` or ``NoSuchUpload`` when it is gone."""
    try:
        return path.open("rb")
    except FileNotFoundError:
        parts.get(upload.key, upload.upload_id)  # NoSuchUpload when the upload went with it
        raise StorageError(
            "One or more of the specified parts could not be found", storage_error="InvalidPart"
        ) from None


def _chosen(held: list[tuple[StoredPart, Path]], wanted: Sequence[tuple[int, str]]) -> list[Path]:
    """Return the files of the ``wanted`` parts, checked as S3 checks them at completion."""
    by_number = {part.part_number: (part, path) for part, path in held}
    files: list[Path] = []
    for index, (number, etag) in enumerate(wanted):
        found = by_number.get(number)
        if found is None or found[0].etag != etag.strip('"').lower():
            raise StorageError(
                "One or more of the specified parts could not be found", storage_error="InvalidPart"
            )
        if found[0].size < MIN_PART_SIZE and index < len(wanted) - 1:
            raise StorageError(
                "Your proposed upload is smaller than the minimum allowed size",
                storage_error="EntityTooSmall",
            )
        files.append(found[1])
    return files
