"""S3Storage: presigned POST uploads, presigned GET downloads and HEAD checks on boto3."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Final, NoReturn

from helppet_recordings.errors import MissingDependencyError, StorageError, StorageUnavailableError
from helppet_recordings.models import StoredObject, UploadTicket
from helppet_recordings.storage._http import content_disposition

try:
    import boto3
    import botocore.config
    import botocore.exceptions
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingDependencyError("boto3", "s3") from exc

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

__all__ = ["SERVER_SIDE_ENCRYPTION", "S3Storage"]

SERVER_SIDE_ENCRYPTION: Final = "AES256"
"""The server-side encryption every upload must request (SSE-S3)."""

_NOT_FOUND_CODES: Final = frozenset({"404", "NoSuchKey", "NotFound"})
_RETRYABLE_CODES: Final = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestThrottled",
        "RequestTimeout",
        "ServiceUnavailable",
        "InternalError",
        "503",
        "500",
    }
)
_DEFAULT_RETRY_AFTER: Final = 5


class S3Storage:
    """Recordings in one S3 bucket (AWS or any S3-compatible server).

    With ``client=None`` a boto3 client is built once and reused. It always
    signs with SigV4 (boto3 would otherwise presign POSTs with SigV2), uses
    virtual-hosted addressing on AWS and path-style addressing whenever an
    endpoint URL is set (``endpoint_url`` or the ``AWS_ENDPOINT_URL_S3`` /
    ``AWS_ENDPOINT_URL`` environment), and honours the standard boto3
    environment for credentials and region.

    A client passed in must already sign with ``s3v4``.
    """

    def __init__(
        self,
        bucket: str,
        client: S3Client | None = None,
        region_name: str | None = None,
        endpoint_url: str | None = None,
        *,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        max_attempts: int = 3,
    ) -> None:
        if not bucket:
            msg = "bucket must not be empty"
            raise ValueError(msg)
        self._bucket = bucket
        if client is None:
            client = _build_client(
                region_name=region_name,
                endpoint_url=endpoint_url,
                connect_timeout=connect_timeout,
                read_timeout=read_timeout,
                max_attempts=max_attempts,
            )
        elif getattr(client.meta.config, "signature_version", None) != "s3v4":
            msg = (
                "the S3 client must sign with SigV4: "
                "create it with config=botocore.config.Config(signature_version='s3v4')"
            )
            raise ValueError(msg)
        self._client = client

    @property
    def bucket(self) -> str:
        """The bucket recordings are stored in."""
        return self._bucket

    @property
    def client(self) -> S3Client:
        """The boto3 client in use."""
        return self._client

    def create_upload(
        self, *, key: str, content_type: str, max_size: int, expires_in: int
    ) -> UploadTicket:
        """Presign a POST whose policy pins bucket, key, type, SSE, size range and expiry."""
        fields = {
            "Content-Type": content_type,
            "x-amz-server-side-encryption": SERVER_SIDE_ENCRYPTION,
        }
        conditions: list[Any] = [
            {"Content-Type": content_type},
            {"x-amz-server-side-encryption": SERVER_SIDE_ENCRYPTION},
            ["content-length-range", 1, max_size],
        ]  # boto3 adds the bucket and the exact key itself
        try:
            post = self._client.generate_presigned_post(
                Bucket=self._bucket,
                Key=key,
                Fields=fields,
                Conditions=conditions,
                ExpiresIn=expires_in,
            )
        except (botocore.exceptions.BotoCoreError, AttributeError) as exc:
            _raise_translated(exc)
        return UploadTicket(
            url=post["url"],
            fields=dict(post["fields"]),  # botocore builds every field as a str
            key=key,
            bucket=self._bucket,
            expires_in=expires_in,
            max_size=max_size,
        )

    def create_download_url(
        self, *, key: str, expires_in: int, content_type: str, filename: str
    ) -> str:
        """Presign a GET that serves ``content_type`` as an attachment named ``filename``."""
        try:
            return self._client.generate_presigned_url(
                "get_object",
                Params={
                    "Bucket": self._bucket,
                    "Key": key,
                    "ResponseContentType": content_type,
                    "ResponseContentDisposition": content_disposition(filename),
                },
                ExpiresIn=expires_in,
            )
        except (botocore.exceptions.BotoCoreError, AttributeError) as exc:
            _raise_translated(exc)

    def object_url(self, key: str) -> str:
        """Return ``s3://bucket/key``."""
        return f"s3://{self._bucket}/{key}"

    def head(self, key: str) -> StoredObject | None:
        """HEAD the object: its size, type, ETag and encryption, or None if it is absent."""
        try:
            response = self._client.head_object(Bucket=self._bucket, Key=key)
        except botocore.exceptions.ClientError as exc:
            if _error_code(exc) in _NOT_FOUND_CODES:
                return None
            _raise_translated(exc)
        except botocore.exceptions.BotoCoreError as exc:
            _raise_translated(exc)
        return StoredObject(
            key=key,
            size=response["ContentLength"],
            content_type=response.get("ContentType"),
            etag=_unquote(response.get("ETag")),
            server_side_encryption=response.get("ServerSideEncryption"),
            last_modified=response.get("LastModified"),
        )

    def delete(self, key: str) -> None:
        """Delete the object; deleting a missing one is not an error."""
        try:
            self._client.delete_object(Bucket=self._bucket, Key=key)
        except botocore.exceptions.ClientError as exc:
            if _error_code(exc) not in _NOT_FOUND_CODES:
                _raise_translated(exc)
        except botocore.exceptions.BotoCoreError as exc:
            _raise_translated(exc)

    def iter_objects(self, prefix: str) -> Iterator[StoredObject]:
        """Yield every object under ``prefix`` (ListObjectsV2, page by page)."""
        paginator = self._client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self._bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    yield StoredObject(
                        key=item["Key"],
                        size=item["Size"],
                        etag=_unquote(item.get("ETag")),
                        last_modified=item.get("LastModified"),
                    )
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            _raise_translated(exc)


def _build_client(
    *,
    region_name: str | None,
    endpoint_url: str | None,
    connect_timeout: float,
    read_timeout: float,
    max_attempts: int,
) -> S3Client:
    endpoint = (
        endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    )
    config = botocore.config.Config(
        signature_version="s3v4",
        s3={"addressing_style": "path" if endpoint else "virtual"},
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        retries={"mode": "standard", "max_attempts": max_attempts},
    )
    session = boto3.session.Session()
    return session.client(
        "s3",
        region_name=region_name or session.region_name or "us-east-1",
        endpoint_url=endpoint or None,
        config=config,
    )


def _error_code(exc: botocore.exceptions.ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _unquote(etag: str | None) -> str | None:
    return None if etag is None else etag.strip('"')


def _raise_translated(exc: Exception) -> NoReturn:
    """Raise the package's error for a botocore error, chained to it."""
    if isinstance(exc, botocore.exceptions.ClientError):
        code = _error_code(exc)
        metadata = exc.response.get("ResponseMetadata", {})
        status = int(metadata.get("HTTPStatusCode", 0) or 0)
        if code in _RETRYABLE_CODES or status >= 500 or status == 429:
            raise StorageUnavailableError(
                f"S3 is unavailable ({code or status}); retry later",
                retry_after=_retry_after(metadata.get("HTTPHeaders", {})),
                storage_error=code or str(status),
            ) from exc
        raise StorageError(
            f"S3 refused the request ({code or status})", storage_error=code or str(status)
        ) from exc
    if isinstance(exc, botocore.exceptions.ConnectionError | botocore.exceptions.HTTPClientError):
        raise StorageUnavailableError(
            "S3 could not be reached; retry later",
            retry_after=_DEFAULT_RETRY_AFTER,
            storage_error=type(exc).__name__,
        ) from exc
    if isinstance(exc, AttributeError):
        # botocore's POST presigner dereferences missing credentials instead of raising
        # NoCredentialsError; nothing else in a presign call raises AttributeError.
        raise StorageError(
            "S3 request could not be signed: NoCredentialsError (no AWS credentials found)",
            storage_error="NoCredentialsError",
        ) from exc
    raise StorageError(
        f"S3 request could not be made: {type(exc).__name__}", storage_error=type(exc).__name__
    ) from exc


def _retry_after(headers: dict[str, str]) -> int:
    value = headers.get("retry-after", "")
    return int(value) if value.isdigit() and 0 < int(value) <= 3600 else _DEFAULT_RETRY_AFTER
