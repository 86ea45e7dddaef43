"""S3Storage's multipart-upload methods (the storage side of resumable uploads)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from helppet_recordings.errors import StorageError
from helppet_recordings.models import MultipartUploadInfo, StoredObject, StoredPart
from helppet_recordings.storage.s3 import _multipart

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

__all__ = ["MultipartUploads"]


class MultipartUploads:
    """Create, sign parts of, list, complete and abort S3 multipart uploads.

    Mixed into :class:`~helppet_recordings.storage.s3.S3Storage`, whose client,
    bucket and encryption settings it uses.
    """

    _client: S3Client
    _bucket: str
    _sse: str
    _kms_key_id: str | None

    def head(self, key: str) -> StoredObject | None:
        """Return what storage knows of ``key`` (implemented by the storage)."""
        raise NotImplementedError

    def create_multipart_upload(self, *, key: str, content_type: str) -> str:
        """Start a multipart upload of ``key``; return its upload id.

        The content type and the storage's encryption (``AES256``, or
        ``aws:kms`` with ``kms_key_id`` when one is set) are fixed here, for
        the object completion will assemble; the parts carry neither.
        """
        return _multipart.create(
            self._client,
            self._bucket,
            key=key,
            content_type=content_type,
            sse=self._sse,
            kms_key_id=self._kms_key_id,
        )

    def sign_upload_part(
        self, *, key: str, upload_id: str, part_number: int, size: int, expires_in: int
    ) -> str:
        """Presign a PUT of part ``part_number`` that must carry exactly ``size`` bytes.

        The signature covers ``Content-Length``: storage refuses a body of
        any other length (the signature no longer matches) and keeps nothing
        of it. Uploading the same part again replaces it.
        """
        return _multipart.sign_part(
            self._client,
            self._bucket,
            key=key,
            upload_id=upload_id,
            part_number=part_number,
            size=size,
            expires_in=expires_in,
        )

    def list_parts(self, *, key: str, upload_id: str) -> list[StoredPart]:
        """Return ``(part number, size, ETag)`` of every part storage holds (all pages).

        One entry per part number, in order: for a part uploaded more than
        once, the most recent upload (SeaweedFS lists each one; S3 keeps only
        the last). Gaps are not filled in: compare the numbers with the plan.

        Raises ``StorageError`` (``storage_error="NoSuchUpload"``) when the
        upload is unknown, completed or aborted.
        """
        return _multipart.list_parts(self._client, self._bucket, key=key, upload_id=upload_id)

    def complete_multipart_upload(
        self, *, key: str, upload_id: str, parts: Sequence[tuple[int, str]]
    ) -> StoredObject:
        """Assemble ``key`` from ``(part number, ETag)`` pairs; return the object as HEAD sees it.

        ``parts`` must come from :meth:`list_parts` (what storage holds),
        never from ETags a client reports. Storage refuses an unknown part or
        ETag (``InvalidPart``) and a part below its minimum size that is not
        the last (``EntityTooSmall``), as ``StorageError``.
        """
        _multipart.complete(self._client, self._bucket, key=key, upload_id=upload_id, parts=parts)
        stored = self.head(key)
        if stored is None:
            raise StorageError(
                "The completed multipart upload is not in storage",
                storage_error="NoSuchKey",
            )
        return stored

    def abort_multipart_upload(self, *, key: str, upload_id: str) -> None:
        """Abort the upload and free its parts; aborting an upload already gone is not an error."""
        _multipart.abort(self._client, self._bucket, key=key, upload_id=upload_id)

    def list_multipart_uploads(self, *, prefix: str) -> list[MultipartUploadInfo]:
        """Return ``(key, upload id, initiated)`` of every unfinished upload under ``prefix``."""
        return _multipart.list_uploads(self._client, self._bucket, prefix=prefix)
