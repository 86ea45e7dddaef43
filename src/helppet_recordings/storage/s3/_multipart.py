"""S3 multipart uploads: create, presign each part, list, complete and abort.

The S3 side of resumable uploads. The parts are planned elsewhere
(:mod:`helppet_recordings.multipart`); here each part's presigned PUT signs
its exact ``Content-Length``, so storage refuses a body of another size, and
completion assembles the object from the parts storage lists, never from ETags
a client reports.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

import botocore.exceptions

from helppet_recordings.models import MultipartUploadInfo, StoredPart
from helppet_recordings.storage._encryption import AWS_KMS
from helppet_recordings.storage.s3._errors import error_code, raise_translated

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

__all__ = [
    "GONE_UPLOAD_CODES",
    "abort",
    "complete",
    "create",
    "list_parts",
    "list_uploads",
    "sign_part",
]

GONE_UPLOAD_CODES: Final = frozenset({"NoSuchUpload", "404"})
"""What S3 answers for an upload id it does not know (never created, completed or aborted)."""


def create(
    client: S3Client,
    bucket: str,
    *,
    key: str,
    content_type: str,
    sse: str,
    kms_key_id: str | None,
) -> str:
    """Start a multipart upload with its content type and encryption fixed; return its id."""
    encryption: dict[str, Any] = {"ServerSideEncryption": sse}
    if sse == AWS_KMS and kms_key_id is not None:
        encryption["SSEKMSKeyId"] = kms_key_id
    try:
        response = client.create_multipart_upload(
            Bucket=bucket, Key=key, ContentType=content_type, **encryption
        )
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
        raise_translated(exc)
    return response["UploadId"]


def sign_part(
    client: S3Client,
    bucket: str,
    *,
    key: str,
    upload_id: str,
    part_number: int,
    size: int,
    expires_in: int,
) -> str:
    """Presign an UploadPart PUT whose signature covers ``Content-Length: size``."""
    if size < 1:
        msg = f"a part has at least 1 byte, not {size}"
        raise ValueError(msg)
    try:
        return client.generate_presigned_url(
            "upload_part",
            Params={
                "Bucket": bucket,
                "Key": key,
                "UploadId": upload_id,
                "PartNumber": part_number,
                "ContentLength": size,
            },
            ExpiresIn=expires_in,
        )
    except (botocore.exceptions.BotoCoreError, AttributeError) as exc:
        raise_translated(exc)


def list_parts(
    client: S3Client, bucket: str, *, key: str, upload_id: str, page_size: int | None = None
) -> list[StoredPart]:
    """Return ``(part number, size, ETag)`` of every part storage holds, in part order.

    Reads every page (``page_size`` parts each; None: storage's default, 1,000 on S3).
    One entry per part number: S3 keeps only the last upload of a part, but
    SeaweedFS lists every upload of a retried part separately, so the most
    recently modified one is kept (on a tie, the one listed last).
    """
    paginator = client.get_paginator("list_parts")
    pages = paginator.paginate(
        Bucket=bucket,
        Key=key,
        UploadId=upload_id,
        PaginationConfig={} if page_size is None else {"PageSize": page_size},
    )
    latest: dict[int, tuple[dt.datetime | None, int, str]] = {}
    try:
        for page in pages:
            for part in page.get("Parts", []):
                number, modified = part["PartNumber"], part.get("LastModified")
                seen = latest.get(number)
                if seen is None or not _earlier(modified, seen[0]):
                    latest[number] = (modified, part["Size"], part["ETag"].strip('"'))
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
        raise_translated(exc)
    return [StoredPart(number, size, etag) for number, (_, size, etag) in sorted(latest.items())]


def _earlier(modified: dt.datetime | None, than: dt.datetime | None) -> bool:
    """Whether a listed part was modified before the one already seen (unknown: not earlier)."""
    return modified is not None and than is not None and modified < than


def complete(
    client: S3Client,
    bucket: str,
    *,
    key: str,
    upload_id: str,
    parts: Sequence[tuple[int, str]],
) -> None:
    """Assemble the object from ``(part number, ETag)`` pairs, sent in ascending order."""
    if not parts:
        msg = "a multipart upload completes with at least one part"
        raise ValueError(msg)
    listed: list[CompletedPartTypeDef] = [
        {"PartNumber": number, "ETag": f'"{etag.strip(chr(34))}"'} for number, etag in sorted(parts)
    ]
    try:
        client.complete_multipart_upload(
            Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": listed}
        )
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
        raise_translated(exc)


def abort(client: S3Client, bucket: str, *, key: str, upload_id: str) -> None:
    """Abort the upload and drop its parts; an upload already gone is not an error."""
    try:
        client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
    except botocore.exceptions.ClientError as exc:
        if error_code(exc) not in GONE_UPLOAD_CODES:
            raise_translated(exc)
    except botocore.exceptions.BotoCoreError as exc:
        raise_translated(exc)


def list_uploads(client: S3Client, bucket: str, *, prefix: str) -> list[MultipartUploadInfo]:
    """Return ``(key, upload id, initiated)`` of every unfinished upload under ``prefix``."""
    paginator = client.get_paginator("list_multipart_uploads")
    uploads: list[MultipartUploadInfo] = []
    try:
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            uploads.extend(
                MultipartUploadInfo(upload["Key"], upload["UploadId"], upload["Initiated"])
                for upload in page.get("Uploads", [])
            )
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
        raise_translated(exc)
    return uploads
