"""InMemoryStorage's multipart uploads: the in-process twin of S3's, with signed part URLs.

A part URL is signed with HMAC over the key, upload id, part number, exact
size and expiry; :meth:`InMemoryMultipart.receive_part` (the twin of a
client's ``PUT``) refuses a body of another length, a bad signature, an
expired URL and an upload that is completed or aborted, and keeps nothing
of what it refuses. Completion concatenates the parts storage holds.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
import threading
import urllib.parse
from collections.abc import Callable, Sequence
from typing import Final

import attrs

from helppet_recordings.errors import StorageError
from helppet_recordings.models import MultipartUploadInfo, StoredObject, StoredPart
from helppet_recordings.multipart import MAX_PART_SIZE, MAX_PARTS, MIN_PART_SIZE

__all__ = ["InMemoryMultipart"]

PARTS_URL: Final = "http://in-memory.invalid"


@attrs.define
class _Upload:
    key: str
    content_type: str
    initiated: dt.datetime
    parts: dict[int, bytes] = attrs.field(factory=dict)


class InMemoryMultipart:
    """Create, sign parts of, receive, list, complete and abort in-memory multipart uploads.

    Mixed into :class:`~helppet_recordings.storage.memory.InMemoryStorage`,
    whose lock, clock, secret and objects it uses.
    """

    _bucket: str
    _lock: threading.Lock
    _clock: Callable[[], float]
    _uploads: dict[str, _Upload]

    def _sign(self, message: str) -> str:
        raise NotImplementedError

    def _put_locked(self, key: str, body: bytes, *, content_type: str) -> StoredObject:
        """Store ``body`` at ``key``; the caller holds the lock (implemented by the storage)."""
        raise NotImplementedError

    def create_multipart_upload(self, *, key: str, content_type: str) -> str:
        """Start a multipart upload of ``key`` whose object gets ``content_type``; return its id."""
        upload_id = secrets.token_hex(16)
        started = dt.datetime.fromtimestamp(self._clock(), dt.UTC)
        with self._lock:
            self._uploads[upload_id] = _Upload(key, content_type, started)
        return upload_id

    def sign_upload_part(
        self, *, key: str, upload_id: str, part_number: int, size: int, expires_in: int
    ) -> str:
        """Sign a part URL :meth:`receive_part` honours for a body of exactly ``size`` bytes."""
        if not 1 <= part_number <= MAX_PARTS or not 1 <= size <= MAX_PART_SIZE:
            msg = f"part {part_number} of {size} bytes is outside S3's limits"
            raise ValueError(msg)
        expires = int(self._clock()) + expires_in
        query = {"uploadId": upload_id, "partNumber": part_number, "size": size, "expires": expires}
        signature = self._sign(_part_message(key, upload_id, part_number, size, expires))
        encoded = urllib.parse.urlencode({**query, "sig": signature})
        return f"{PARTS_URL}/{self._bucket}/{urllib.parse.quote(key, safe='/')}?{encoded}"

    def receive_part(self, url: str, body: bytes) -> str:
        """Store ``body`` as part of an upload, as a ``PUT url`` would; return the part's ETag.

        Raises ``StorageError`` (``details["reason"]``: ``signature``,
        ``expired`` or ``size``; ``storage_error="NoSuchUpload"`` for an upload
        that is finished or unknown) and keeps nothing when it refuses.
        """
        parts = urllib.parse.urlsplit(url)
        key = urllib.parse.unquote(parts.path.removeprefix(f"/{self._bucket}/"))
        query = dict(urllib.parse.parse_qsl(parts.query))
        try:
            upload_id = query["uploadId"]
            number, size, expires = (int(query[name]) for name in ("partNumber", "size", "expires"))
        except (KeyError, ValueError):
            raise _refused("signature") from None
        expected = self._sign(_part_message(key, upload_id, number, size, expires))
        if not hmac.compare_digest(expected, query.get("sig", "")):
            raise _refused("signature")
        if self._clock() > expires:
            raise _refused("expired")
        if len(body) != size:
            raise _refused("size")
        with self._lock:
            upload = self._uploads.get(upload_id)
            if upload is None or upload.key != key:
                raise _no_such_upload()
            upload.parts[number] = bytes(body)
        return _part_etag(body)

    def list_parts(self, *, key: str, upload_id: str) -> list[StoredPart]:
        """Return every part held for the upload, one per part number, in order."""
        with self._lock:
            upload = self._upload(key, upload_id)
            held = sorted(upload.parts.items())
        return [StoredPart(number, len(body), _part_etag(body)) for number, body in held]

    def complete_multipart_upload(
        self, *, key: str, upload_id: str, parts: Sequence[tuple[int, str]]
    ) -> StoredObject:
        """Assemble ``key`` from the listed parts, as S3 does; the upload id is gone afterwards.

        Refuses (``StorageError``) an empty list, a part it does not hold or
        whose ETag differs (``InvalidPart``), parts out of order
        (``InvalidPartOrder``) and a part below 5 MiB that is not the last
        (``EntityTooSmall``), keeping the upload as it was.
        """
        numbers = [number for number, _ in parts]
        if not parts or numbers != sorted(set(numbers)):
            raise StorageError(
                "The parts must be listed once each, in order", storage_error="InvalidPartOrder"
            )
        with self._lock:
            upload = self._upload(key, upload_id)
            bodies: list[bytes] = []
            for index, (number, etag) in enumerate(parts):
                body = upload.parts.get(number)
                if body is None or _part_etag(body) != etag.strip('"'):
                    raise StorageError("A listed part is not held", storage_error="InvalidPart")
                if len(body) < MIN_PART_SIZE and index < len(parts) - 1:
                    raise StorageError("A part is too small", storage_error="EntityTooSmall")
                bodies.append(body)
            # One step: the upload is there until its object is.
            stored = self._put_locked(key, b"".join(bodies), content_type=upload.content_type)
            del self._uploads[upload_id]
        return stored

    def abort_multipart_upload(self, *, key: str, upload_id: str) -> None:
        """Drop the upload and its parts; an upload already gone is not an error."""
        with self._lock:
            upload = self._uploads.get(upload_id)
            if upload is not None and upload.key == key:
                del self._uploads[upload_id]

    def list_multipart_uploads(self, *, prefix: str) -> list[MultipartUploadInfo]:
        """Return every unfinished upload whose key starts with ``prefix``, by key."""
        with self._lock:
            found = [
                MultipartUploadInfo(upload.key, upload_id, upload.initiated)
                for upload_id, upload in self._uploads.items()
                if upload.key.startswith(prefix)
            ]
        return sorted(found)

    def _upload(self, key: str, upload_id: str) -> _Upload:
        upload = self._uploads.get(upload_id)
        if upload is None or upload.key != key:
            raise _no_such_upload()
        return upload


def _part_message(key: str, upload_id: str, number: int, size: int, expires: int) -> str:
    return f"part\n{key}\n{upload_id}\n{number}\n{size}\n{expires}"


def _part_etag(body: bytes) -> str:
    return hashlib.md5(body).hexdigest()  # noqa: S324 - an S3-style part ETag, not security


def _no_such_upload() -> StorageError:
    return StorageError("The multipart upload does not exist", storage_error="NoSuchUpload")


def _refused(reason: str) -> StorageError:
    return StorageError("Storage refused the part: it breaks the part URL's terms", reason=reason)
