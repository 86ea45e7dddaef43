"""InMemoryStorage: a complete storage backend in a dict, for tests and embedded use.

It signs tickets and download URLs with HMAC like ``LocalStorage`` does,
enforces the ticket's policy when bytes are handed to :meth:`receive_upload`
(the in-process twin of a phone's POST), and reports an MD5 ETag and a
SHA-256 as S3 and ``LocalStorage`` do. Like S3, it gives objects under
``aws:kms`` an ETag that is not their MD5. Nothing leaves the process: upload and
download URLs point at the reserved host ``in-memory.invalid`` and are for the
object's own methods (:meth:`InMemoryStorage.receive_upload`,
:meth:`InMemoryStorage.receive_part`, :meth:`InMemoryStorage.download`), not
for HTTP clients. Multipart uploads work as on S3 (``memory_multipart``).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import secrets
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from typing import Final

import attrs

from helppet_recordings.errors import StorageError
from helppet_recordings.models import StoredObject, UploadTicket
from helppet_recordings.storage._checksums import (
    CHECKSUM_ALGORITHM_FIELD,
    SHA256_FIELD,
    sha256_fields,
)
from helppet_recordings.storage._encryption import (
    AES256,
    AWS_KMS,
    ENCRYPTION_FIELD,
    KMS_KEY_FIELD,
    EncryptionSettings,
    check_encryption,
    encryption_fields,
)
from helppet_recordings.storage.memory_multipart import InMemoryMultipart

__all__ = ["InMemoryStorage"]

DEFAULT_BUCKET: Final = "helppet-audio-recordings"
BASE_URL: Final = "http://in-memory.invalid"


@attrs.frozen
class _Object:
    body: bytes
    content_type: str | None
    server_side_encryption: str | None
    kms_key_id: str | None
    last_modified: dt.datetime
    etag: str
    sha256: str


class InMemoryStorage(InMemoryMultipart, EncryptionSettings):
    """Objects in memory, with signed tickets whose policy it enforces itself.

    ``clock`` returns seconds since the epoch (``time.time`` by default);
    tests move it to expire tickets. ``sse`` and ``kms_key_id`` are the
    encryption tickets pin, as on :class:`~helppet_recordings.S3Storage`.
    Thread-safe.
    """

    def __init__(
        self,
        bucket: str = DEFAULT_BUCKET,
        *,
        secret: bytes | None = None,
        clock: Callable[[], float] = time.time,
        sse: str = AES256,
        kms_key_id: str | None = None,
    ) -> None:
        check_encryption(sse, kms_key_id)
        self._bucket = bucket
        self._sse = sse
        self._kms_key_id = kms_key_id
        self._secret = secret if secret is not None else secrets.token_bytes(32)
        self._clock = clock
        self._objects: dict[str, _Object] = {}
        self._uploads = {}
        self._lock = threading.Lock()

    @property
    def bucket(self) -> str:
        """The bucket name tickets and records carry."""
        return self._bucket

    @property
    def pins_checksums(self) -> bool:
        """Whether a ticket pinning a SHA-256 may name the final key (as on S3: not with KMS)."""
        return self._sse == AES256

    # ------------------------------------------------------------------------ signing

    def create_upload(
        self,
        *,
        key: str,
        content_type: str,
        max_size: int,
        expires_in: int,
        sha256: str | None = None,
    ) -> UploadTicket:
        """Sign a ticket pinning key, type, encryption, 1..``max_size`` bytes and expiry.

        With ``sha256`` (64 hex characters) the ticket also pins the body's
        SHA-256, in the fields S3 uses, and a body with another is refused.
        """
        encryption = encryption_fields(self._sse, self._kms_key_id)
        checksum = sha256_fields(sha256) if sha256 is not None else {}
        policy = {
            "key": key,
            "content_type": content_type,
            "encryption": encryption,
            "checksum": checksum,
            "max_size": max_size,
            "expires_at": int(self._clock()) + expires_in,
        }
        encoded = base64.b64encode(json.dumps(policy, sort_keys=True).encode()).decode()
        fields = {
            "key": key,
            "Content-Type": content_type,
            **encryption,
            **checksum,
            "policy": encoded,
            "signature": self._sign(encoded),
        }
        return UploadTicket(
            url=f"{BASE_URL}/{self._bucket}/upload",
            fields=fields,
            key=key,
            bucket=self._bucket,
            expires_in=expires_in,
            max_size=max_size,
        )

    def receive_upload(self, fields: Mapping[str, str], body: bytes) -> StoredObject:
        """Store ``body`` as a POST with ``fields`` would; refuse what the policy forbids.

        Raises ``StorageError`` (``details["reason"]`` says which rule) and
        stores nothing when the signature, key, type, encryption, checksum,
        size or expiry is wrong.
        """
        encoded = fields.get("policy", "")
        if not hmac.compare_digest(self._sign(encoded), fields.get("signature", "")):
            raise _refused("signature")
        policy = json.loads(base64.b64decode(encoded))
        encryption: dict[str, str] = policy["encryption"]
        checksum: dict[str, str] = policy["checksum"]
        declared = checksum.get(SHA256_FIELD)
        checks = (
            ("key", fields.get("key") == policy["key"]),
            ("content_type", fields.get("Content-Type") == policy["content_type"]),
            ("encryption", all(fields.get(name) == encryption.get(name) for name in _SSE_FIELDS)),
            ("checksum", all(fields.get(name) == checksum.get(name) for name in _SUM_FIELDS)),
            ("size", 1 <= len(body) <= policy["max_size"]),
            ("expired", self._clock() <= policy["expires_at"]),
            ("checksum", declared is None or declared == _sha256_base64(body)),
        )
        for reason, passed in checks:
            if not passed:
                raise _refused(reason)
        return self.put_object(
            policy["key"],
            body,
            content_type=policy["content_type"],
            server_side_encryption=encryption[ENCRYPTION_FIELD],
            kms_key_id=encryption.get(KMS_KEY_FIELD),
        )

    def create_download_url(
        self, *, key: str, expires_in: int, content_type: str, filename: str
    ) -> str:
        """Sign a URL that :meth:`download` honours until it expires.

        ``filename`` is accepted for the port's sake and left out of the URL.
        """
        expires_at = int(self._clock()) + expires_in
        query = urllib.parse.urlencode(
            {"expires": expires_at, "sig": self._sign(f"{key}\n{expires_at}")}
        )
        return f"{BASE_URL}/{self._bucket}/{urllib.parse.quote(key, safe='/')}?{query}"

    def download(self, url: str) -> bytes:
        """Return the bytes a download URL grants; ``StorageError`` if it is invalid or expired."""
        parts = urllib.parse.urlsplit(url)
        key = urllib.parse.unquote(parts.path.removeprefix(f"/{self._bucket}/"))
        query = dict(urllib.parse.parse_qsl(parts.query))
        expires = query.get("expires", "")
        valid = hmac.compare_digest(self._sign(f"{key}\n{expires}"), query.get("sig", ""))
        if not valid or not expires.isdigit() or self._clock() > int(expires):
            raise _refused("download")
        with self._lock:
            found = self._objects.get(key)
        if found is None:
            raise StorageError("No such object", storage_error="NoSuchKey")
        return found.body

    def object_url(self, key: str) -> str:
        """Return ``memory://bucket/key``: names the object, grants nothing."""
        return f"memory://{self._bucket}/{key}"

    # ------------------------------------------------------------------------ objects

    def put_object(
        self,
        key: str,
        body: bytes,
        *,
        content_type: str | None,
        server_side_encryption: str | None = AES256,
        kms_key_id: str | None = None,
    ) -> StoredObject:
        """Store ``body`` at ``key`` directly (tests, fixtures, imports); return what is stored.

        Under ``aws:kms`` the ETag is opaque (not the MD5), as on S3.
        """
        stored = self._object(body, content_type, server_side_encryption, kms_key_id)
        with self._lock:
            self._objects[key] = stored
        return _describe(key, stored)

    def _put_locked(self, key: str, body: bytes, *, content_type: str) -> StoredObject:
        """Store ``body`` at ``key`` with the storage's encryption; the caller holds the lock."""
        stored = self._object(body, content_type, self._sse, self._kms_key_id)
        self._objects[key] = stored
        return _describe(key, stored)

    def _object(
        self, body: bytes, content_type: str | None, sse: str | None, kms_key_id: str | None
    ) -> _Object:
        """Build the stored object of ``body``: its ETag and SHA-256, stamped now."""
        return _Object(
            body=bytes(body),
            content_type=content_type,
            server_side_encryption=sse,
            kms_key_id=kms_key_id if sse == AWS_KMS else None,
            last_modified=dt.datetime.fromtimestamp(self._clock(), dt.UTC),
            etag=_etag(body, sse),
            sha256=hashlib.sha256(body).hexdigest(),
        )

    def head(self, key: str) -> StoredObject | None:
        """Return the object's size, type, ETag, encryption and SHA-256, or None."""
        with self._lock:
            found = self._objects.get(key)
        return None if found is None else _describe(key, found)

    def promote(
        self, source_key: str, target_key: str, *, expected: StoredObject
    ) -> StoredObject | None:
        """Move the object at ``source_key`` to ``target_key`` if it is still exactly ``expected``.

        The check and the move are one atomic step: when the source is gone,
        or its ETag or size is not ``expected``'s, nothing is moved or deleted
        and the result is None. Otherwise the bytes, content type and
        encryption land at ``target_key``, the source is removed, and the
        target is returned as :meth:`head` reports it.
        """
        with self._lock:
            found = self._objects.get(source_key)
            if found is None or (found.etag, len(found.body)) != (expected.etag, expected.size):
                return None
            moved = attrs.evolve(
                found,
                last_modified=dt.datetime.fromtimestamp(self._clock(), dt.UTC),
                etag=_etag(found.body, found.server_side_encryption),
            )
            self._objects[target_key] = moved
            del self._objects[source_key]
        return _describe(target_key, moved)

    def read_range(self, key: str, *, offset: int, length: int) -> bytes | None:
        """Return up to ``length`` bytes from ``offset``, or None when there is no object."""
        with self._lock:
            found = self._objects.get(key)
        return None if found is None else found.body[offset : offset + length]

    def read_pinned(self, key: str, *, etag: str, offset: int, length: int) -> bytes | None:
        """Return up to ``length`` bytes from ``offset`` of the object only if its ETag is ``etag``.

        None when there is no object, or one with another ETag (``PinnedReads``).
        """
        with self._lock:
            found = self._objects.get(key)
        if found is None or found.etag != etag:
            return None
        return found.body[offset : offset + length]

    def delete(self, key: str) -> None:
        """Remove the object; a missing one is not an error."""
        with self._lock:
            self._objects.pop(key, None)

    def iter_objects(self, prefix: str) -> Iterator[StoredObject]:
        """Yield every object under ``prefix`` in ascending key order (a snapshot)."""
        with self._lock:
            found = sorted(
                ((k, v) for k, v in self._objects.items() if k.startswith(prefix)),
                key=lambda item: item[0],
            )
        for key, stored in found:
            yield _describe(key, stored)

    def _sign(self, message: str) -> str:
        return hmac.new(self._secret, message.encode(), hashlib.sha256).hexdigest()


def _describe(key: str, stored: _Object) -> StoredObject:
    return StoredObject(
        key=key,
        size=len(stored.body),
        content_type=stored.content_type,
        etag=stored.etag,
        server_side_encryption=stored.server_side_encryption,
        last_modified=stored.last_modified,
        sha256=stored.sha256,
        kms_key_id=stored.kms_key_id,
    )


def _etag(body: bytes, server_side_encryption: str | None) -> str:
    if server_side_encryption == AWS_KMS:
        return secrets.token_hex(16)  # S3's ETag of an SSE-KMS object is not its MD5
    return hashlib.md5(body).hexdigest()  # noqa: S324 - an S3-style ETag, not security


_SSE_FIELDS: Final = (ENCRYPTION_FIELD, KMS_KEY_FIELD)
_SUM_FIELDS: Final = (CHECKSUM_ALGORITHM_FIELD, SHA256_FIELD)


def _sha256_base64(body: bytes) -> str:
    return base64.b64encode(hashlib.sha256(body).digest()).decode("ascii")


def _refused(reason: str) -> StorageError:
    return StorageError("Storage refused the upload: it breaks the ticket's policy", reason=reason)
