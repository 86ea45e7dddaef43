"""S3Storage: presigned POST uploads, presigned GET downloads and HEAD checks on boto3."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, Final, NoReturn

from helppet_recordings.errors import MissingDependencyError, StorageError, StorageUnavailableError
from helppet_recordings.models import StoredObject, UploadTicket
from helppet_recordings.storage._http import content_disposition

try:
    import boto3
    import botocore.config
    import botocore.exceptions
    import botocore.signers
    import botocore.utils
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
        self._post_signer = _PostSigner(client, bucket)

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
        ]
        try:
            post = self._post_signer.sign(
                key=key, fields=fields, conditions=conditions, expires_in=expires_in
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

    def read_range(self, key: str, *, offset: int, length: int) -> bytes | None:
        """GET ``length`` bytes from ``offset`` (a ranged read), or None if the object is absent."""
        byte_range = f"bytes={offset}-{offset + length - 1}"
        try:
            response = self._client.get_object(Bucket=self._bucket, Key=key, Range=byte_range)
            with contextlib.closing(response["Body"]) as body:
                return body.read(length)
        except botocore.exceptions.ClientError as exc:
            code = _error_code(exc)
            if code in _NOT_FOUND_CODES:
                return None
            if code == "InvalidRange":
                return b""  # the object exists but ends before ``offset``
            _raise_translated(exc)
        except botocore.exceptions.BotoCoreError as exc:
            _raise_translated(exc)

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


class _PostSigner:
    """Presigns POST policies for one bucket, resolving the bucket's endpoint only once.

    ``generate_presigned_post`` resolves the S3 endpoint rules for the bucket
    on every call, which is about two thirds of its cost; the result depends
    only on the bucket and the client, so it is resolved once here and each
    ticket is signed by botocore's own ``S3PostPresigner`` with the client's
    request signer (which fetches fresh credentials on every signature). The
    resolution uses botocore internals; if they are not what this code
    expects, every ticket goes through the public ``generate_presigned_post``
    instead. Both paths produce the same URL, fields and policy (tested).
    """

    def __init__(self, client: S3Client, bucket: str) -> None:
        self._client = client
        self._bucket = bucket
        self._request: dict[str, Any] | None = None
        self._presigner: botocore.signers.S3PostPresigner | None = None
        try:
            self._request = self._resolve_request()
            self._presigner = botocore.signers.S3PostPresigner(client._request_signer)  # type: ignore[attr-defined]
        except Exception:  # noqa: BLE001 - any surprise in botocore internals: use the public path
            self._request = None

    @property
    def cached(self) -> bool:
        """Whether tickets are signed with the resolved endpoint (the fast path)."""
        return self._request is not None

    def _resolve_request(self) -> dict[str, Any]:
        # The same steps as botocore's generate_presigned_post, done once per bucket.
        client: Any = self._client
        context = {
            "is_presign_request": True,
            "use_global_endpoint": botocore.signers._should_use_global_endpoint(client),  # type: ignore[attr-defined]
        }
        operation = client.meta.service_model.operation_model("CreateBucket")
        params = client._emit_api_params(
            api_params={"Bucket": self._bucket}, operation_model=operation, context=context
        )
        endpoint_url, headers, _ = client._resolve_endpoint_ruleset(
            operation,
            params,
            context,
            ignore_signing_region=not botocore.utils.ArnParser.is_arn(self._bucket),
        )
        request: dict[str, Any] = client._convert_to_request_dict(
            api_params=params,
            operation_model=operation,
            endpoint_url=endpoint_url,
            context=context,
            headers=headers,
            set_user_agent_header=False,
        )
        return request

    def sign(
        self, *, key: str, fields: dict[str, str], conditions: list[Any], expires_in: int
    ) -> Mapping[str, Any]:
        """Return ``{"url": ..., "fields": ...}`` exactly as ``generate_presigned_post`` does."""
        if self._request is None or self._presigner is None:
            return self._client.generate_presigned_post(
                Bucket=self._bucket,
                Key=key,
                Fields=fields,
                Conditions=conditions,
                ExpiresIn=expires_in,
            )
        cached = self._request
        request = {  # signing writes into the context and headers: give it fresh ones
            **cached,
            "headers": dict(cached["headers"]),
            "context": {
                name: dict(value) if isinstance(value, dict) else value
                for name, value in cached["context"].items()
            },
        }
        post: Mapping[str, Any] = self._presigner.generate_presigned_post(
            request_dict=request,
            fields={**fields, "key": key},
            conditions=[*conditions, {"bucket": self._bucket}, {"key": key}],
            expires_in=expires_in,
        )
        return post


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
