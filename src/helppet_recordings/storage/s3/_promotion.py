"""S3Storage's move of a verified upload from its staging key to its final key (``promote``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

import botocore.exceptions

from helppet_recordings.errors import StorageError
from helppet_recordings.models import StoredObject
from helppet_recordings.storage._checksums import from_s3_base64
from helppet_recordings.storage._encryption import AWS_KMS
from helppet_recordings.storage.s3._errors import NOT_FOUND_CODES, error_code, raise_translated

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

__all__ = ["MAX_COPY_SIZE", "Promotion", "unquote"]

MAX_COPY_SIZE: Final = 5 * 1024**3
"""The largest object one CopyObject copies (5 GiB): the limit of :meth:`Promotion.promote`."""

_REFUSED_COPY_CODES: Final = frozenset({"PreconditionFailed", "412", *NOT_FOUND_CODES})


class Promotion:
    """The conditional copy-then-delete that moves verified audio out of a ticket's reach.

    Mixed into :class:`~helppet_recordings.storage.s3.S3Storage`, whose
    client, bucket, encryption settings, ``head`` and ``delete`` it uses.
    """

    _client: S3Client
    _bucket: str
    _sse: str
    _kms_key_id: str | None
    _copy_source_if_match: bool

    def head(self, key: str) -> StoredObject | None:
        """Return what storage knows of ``key`` (implemented by the storage)."""
        raise NotImplementedError

    def delete(self, key: str) -> None:
        """Remove the object at ``key`` (implemented by the storage)."""
        raise NotImplementedError

    def promote(
        self, source_key: str, target_key: str, *, expected: StoredObject
    ) -> StoredObject | None:
        """Move the object at ``source_key`` to ``target_key`` if it is still exactly ``expected``.

        ``expected`` is what :meth:`head` (or :meth:`head_and_read`) reported
        for the source when it was verified. The move is a CopyObject
        conditioned on the source's ETag (``x-amz-copy-source-if-match``), so
        bytes that replace the source after that look (a replayed upload
        ticket) are never copied. The copy keeps the content type and
        metadata (``MetadataDirective=COPY``) and asks again for the source's
        encryption (AES256, or ``aws:kms`` with the same key). The source is
        deleted only after the copy landed.

        Returns the target as :meth:`head` reports it, or None when nothing
        was moved and nothing deleted: the source is gone or no longer
        ``expected``. When the copy's ETag is the source's MD5 (a single-part,
        non-KMS object) the copy holds the verified bytes and the answer is
        built from the copy's response (its ETag, time, version and
        checksums; the checksums ``expected`` carries where the response has
        none) without another request; otherwise the target is HEADed and its
        size and checksums compared with ``expected`` (a mismatch is
        deleted). Safe to retry after a ``StorageUnavailableError``: the copy
        is repeated only while the source is still ``expected``.

        With ``copy_source_if_match=False`` (a server that ignores the copy
        condition, as moto does) the source is HEADed before the copy and the
        target always after it.

        Objects are at most 5 GiB (``MAX_COPY_SIZE``, the CopyObject limit);
        a larger one raises ``StorageError`` before any request is made.
        """
        if expected.etag is None:
            msg = "expected must carry the ETag that head() reported"
            raise ValueError(msg)
        if expected.size > MAX_COPY_SIZE:
            raise StorageError(
                f"Objects over {MAX_COPY_SIZE} bytes cannot be moved with one copy",
                storage_error="EntityTooLarge",
                size=expected.size,
            )
        if not self._copy_source_if_match and not _same_object(self.head(source_key), expected):
            return None
        encryption = self._copy_encryption(expected)
        try:
            response = self._client.copy_object(
                Bucket=self._bucket,
                Key=target_key,
                CopySource={"Bucket": self._bucket, "Key": source_key},
                CopySourceIfMatch=f'"{expected.etag}"',
                MetadataDirective="COPY",
                **encryption,
            )
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) in _REFUSED_COPY_CODES:
                return None
            raise_translated(exc)
        except botocore.exceptions.BotoCoreError as exc:
            raise_translated(exc)
        moved = (
            _copied(target_key, response, expected, encryption)
            if self._copy_source_if_match
            else None
        )
        if moved is None:
            moved = self.head(target_key)
            if moved is None:
                return None
            if not _same_content(moved, expected):
                self.delete(target_key)  # a server that ignored the condition copied other bytes
                return None
        self.delete(source_key)
        return moved

    def _copy_encryption(self, expected: StoredObject) -> dict[str, Any]:
        """Ask again for the source's encryption (the configured one if it reported none)."""
        if expected.server_side_encryption is None:
            encryption, key = self._sse, self._kms_key_id
        else:
            encryption, key = expected.server_side_encryption, expected.kms_key_id
        params: dict[str, Any] = {"ServerSideEncryption": encryption}
        if encryption.startswith(AWS_KMS) and key:
            params["SSEKMSKeyId"] = key
        return params


def _copied(
    key: str, response: Mapping[str, Any], expected: StoredObject, encryption: Mapping[str, Any]
) -> StoredObject | None:
    """Return the copy as :meth:`S3Storage.head` reports it, when the response proves its bytes.

    Only an ETag that is the MD5 of the expected bytes proves it (None otherwise).
    The type and metadata were copied; the encryption is the one the copy
    asked for (S3 applies it or refuses the copy). HEAD reports the time in
    whole seconds.
    """
    result = response.get("CopyObjectResult") or {}
    etag = unquote(result.get("ETag"))
    if expected.md5 is None or etag != expected.etag:
        return None
    modified = result.get("LastModified")
    return StoredObject(
        key=key,
        size=expected.size,
        content_type=expected.content_type,
        etag=etag,
        server_side_encryption=response.get("ServerSideEncryption")
        or encryption["ServerSideEncryption"],
        last_modified=None
        if modified is None
        else modified.astimezone(dt.UTC).replace(microsecond=0),
        kms_key_id=response.get("SSEKMSKeyId") or encryption.get("SSEKMSKeyId"),
        version_id=response.get("VersionId"),
        sha256=from_s3_base64(result.get("ChecksumSHA256"), size=32) or expected.sha256,
        crc64nvme=from_s3_base64(result.get("ChecksumCRC64NVME"), size=8) or expected.crc64nvme,
    )


def _same_object(found: StoredObject | None, expected: StoredObject) -> bool:
    return found is not None and (found.etag, found.size) == (expected.etag, expected.size)


def _same_content(copied: StoredObject, expected: StoredObject) -> bool:
    """Whether a copy holds the expected bytes, as far as its size and checksums tell."""
    if copied.size != expected.size:
        return False
    return all(
        mine is None or theirs is None or mine == theirs
        for mine, theirs in (
            (copied.md5, expected.md5),
            (copied.sha256, expected.sha256),
            (copied.crc64nvme, expected.crc64nvme),
        )
    )


def unquote(etag: str | None) -> str | None:
    """Return an ETag without the quotes S3 puts around it."""
    return None if etag is None else etag.strip('"')
