"""S3Storage: the storage port on one S3 bucket (AWS or any S3-compatible server)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Final

import botocore.exceptions

from helppet_recordings.models import StoredObject, UploadTicket
from helppet_recordings.storage._http import content_disposition
from helppet_recordings.storage.s3._client import build_client
from helppet_recordings.storage.s3._errors import NOT_FOUND_CODES, error_code, raise_translated
from helppet_recordings.storage.s3._signer import PostSigner

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

__all__ = ["SERVER_SIDE_ENCRYPTION", "S3Storage"]

SERVER_SIDE_ENCRYPTION: Final = "AES256"
"""The server-side encryption every upload must request (SSE-S3)."""


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
            client = build_client(
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
        self._post_signer = PostSigner(client, bucket)

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
            raise_translated(exc)
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
            raise_translated(exc)

    def object_url(self, key: str) -> str:
        """Return ``s3://bucket/key``."""
        return f"s3://{self._bucket}/{key}"

    def head(self, key: str) -> StoredObject | None:
        """HEAD the object: its size, type, ETag and encryption, or None if it is absent."""
        try:
            response = self._client.head_object(Bucket=self._bucket, Key=key)
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) in NOT_FOUND_CODES:
                return None
            raise_translated(exc)
        except botocore.exceptions.BotoCoreError as exc:
            raise_translated(exc)
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
            code = error_code(exc)
            if code in NOT_FOUND_CODES:
                return None
            if code == "InvalidRange":
                return b""  # the object exists but ends before ``offset``
            raise_translated(exc)
        except botocore.exceptions.BotoCoreError as exc:
            raise_translated(exc)

    def delete(self, key: str) -> None:
        """Delete the object; deleting a missing one is not an error."""
        try:
            self._client.delete_object(Bucket=self._bucket, Key=key)
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) not in NOT_FOUND_CODES:
                raise_translated(exc)
        except botocore.exceptions.BotoCoreError as exc:
            raise_translated(exc)

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
            raise_translated(exc)


def _unquote(etag: str | None) -> str | None:
    return None if etag is None else etag.strip('"')
