"""S3Storage: the storage port on one S3 bucket (AWS or any S3-compatible server)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, Final

import attrs
import botocore.exceptions

from helppet_recordings.models import StoredObject, UploadTicket
from helppet_recordings.storage._checksums import from_s3_base64, sha256_fields
from helppet_recordings.storage._encryption import (
    AES256,
    EncryptionSettings,
    check_encryption,
    encryption_fields,
)
from helppet_recordings.storage._http import DOWNLOAD_CACHE_CONTROL, content_disposition
from helppet_recordings.storage.s3._client import MAX_POOL_CONNECTIONS, build_client
from helppet_recordings.storage.s3._direct import DirectReads
from helppet_recordings.storage.s3._errors import NOT_FOUND_CODES, error_code, raise_translated
from helppet_recordings.storage.s3._multipart_methods import MultipartUploads
from helppet_recordings.storage.s3._promotion import MAX_COPY_SIZE, Promotion, unquote
from helppet_recordings.storage.s3._signer import PostSigner

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

__all__ = ["MAX_COPY_SIZE", "SERVER_SIDE_ENCRYPTION", "S3Storage"]

SERVER_SIDE_ENCRYPTION: Final = AES256
"""The server-side encryption uploads must request by default (SSE-S3)."""

_PRECONDITION_FAILED_CODES: Final = frozenset({"PreconditionFailed", "412"})


class S3Storage(Promotion, MultipartUploads, EncryptionSettings):
    """Recordings in one S3 bucket (AWS or any S3-compatible server).

    With ``client=None`` a boto3 client is built once and reused. It always
    signs with SigV4 (boto3 would otherwise presign POSTs with SigV2), uses
    virtual-hosted addressing on AWS and path-style addressing whenever an
    endpoint URL is set (``endpoint_url`` or the ``AWS_ENDPOINT_URL_S3`` /
    ``AWS_ENDPOINT_URL`` environment), and honours the standard boto3
    environment for credentials and region.

    A client passed in must already sign with ``s3v4``.

    ``max_pool_connections`` (default 40) is how many connections the built
    client keeps open to S3: at least the number of threads that call the
    storage at once (a uvicorn worker runs blocking calls on AnyIO's 40
    threads). botocore's default, 10, makes every call past the tenth open
    and close a connection of its own. A client passed in keeps its own pool.

    ``sse`` is the server-side encryption every upload must request:
    ``"AES256"`` (SSE-S3, the default) or ``"aws:kms"``, with ``kms_key_id``
    (the key's ARN or id; an alias is refused, since S3 reports the key ARN
    and completion could not check it) or without (the account's ``aws/s3``
    key). The POST policy pins both, and :meth:`encryption_matches` tells
    whether a stored object honours them.

    ``copy_source_if_match`` says that the server honours
    ``x-amz-copy-source-if-match`` (AWS S3 and SeaweedFS do): :meth:`promote`
    then trusts the condition and its copy's ETag. Set it False for a server
    that ignores the condition (moto does): every move then HEADs the source
    before the copy and the target after it.

    ``checksum_tickets`` says that the server verifies a POST's
    ``x-amz-checksum-sha256`` field against the body (AWS S3 and SeaweedFS
    do): an upload whose client declared its SHA-256 then gets a ticket
    pinning it at the final key, so completion needs no copy (see
    ``ChecksumPinning``). Set it False for a server that ignores the field;
    such uploads then go through a staging key like the others. SSE-KMS
    never pins (its ETag changes on every write).

    ``direct_reads`` sends completion's ranged read (:meth:`head_and_read`)
    as a presigned GET on the client's own HTTP session (1.1 ms of CPU
    against 1.7-2.0 ms for ``GetObject`` on SeaweedFS); any answer but a
    plain success is asked again through ``GetObject``. Turn it off to see
    that read in botocore's ``before-call``/``after-call`` hooks (tracing
    instrumentation uses them; botocore's ``Stubber`` answers there, so a
    test that scripts ``get_object`` with it needs it off too);
    ``before-send`` sees it either way (moto answers there).
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
        max_pool_connections: int = MAX_POOL_CONNECTIONS,
        sse: str = AES256,
        kms_key_id: str | None = None,
        copy_source_if_match: bool = True,
        checksum_tickets: bool = True,
        direct_reads: bool = True,
    ) -> None:
        if not bucket:
            msg = "bucket must not be empty"
            raise ValueError(msg)
        check_encryption(sse, kms_key_id)
        self._bucket = bucket
        self._sse = sse
        self._kms_key_id = kms_key_id
        self._copy_source_if_match = copy_source_if_match
        self._checksum_tickets = checksum_tickets
        injected = client is not None
        if client is None:
            client = build_client(
                region_name=region_name,
                endpoint_url=endpoint_url,
                connect_timeout=connect_timeout,
                read_timeout=read_timeout,
                max_attempts=max_attempts,
                max_pool_connections=max_pool_connections,
            )
        self._client = client
        self._post_signer = PostSigner(client, bucket)
        self._direct = DirectReads(client, bucket) if direct_reads else None
        if injected and (
            getattr(client.meta.config, "signature_version", None) != "s3v4"
            or not _presigns_sigv4_posts(client, bucket)
        ):
            msg = (
                "the S3 client must sign with SigV4: "
                "create it with config=botocore.config.Config(signature_version='s3v4')"
            )
            raise ValueError(msg)

    @property
    def bucket(self) -> str:
        """The bucket recordings are stored in."""
        return self._bucket

    @property
    def pins_checksums(self) -> bool:
        """Whether a ticket pinning a SHA-256 may name the final key (see ``ChecksumPinning``)."""
        return self._checksum_tickets and self._sse == AES256

    @property
    def client(self) -> S3Client:
        """The boto3 client in use."""
        return self._client

    def create_upload(
        self,
        *,
        key: str,
        content_type: str,
        max_size: int,
        expires_in: int,
        sha256: str | None = None,
    ) -> UploadTicket:
        """Presign a POST whose policy pins bucket, key, type, SSE, size range and expiry.

        With ``aws:kms`` and a ``kms_key_id`` the policy also pins the key
        (``x-amz-server-side-encryption-aws-kms-key-id``). With ``sha256``
        (the client's declared SHA-256, 64 hex characters) it pins
        ``x-amz-checksum-algorithm: SHA256`` and ``x-amz-checksum-sha256``
        (base64): storage refuses a body with another digest (``BadDigest``)
        and keeps the checksum, which :meth:`head` then reports.
        """
        fields = {"Content-Type": content_type, **encryption_fields(self._sse, self._kms_key_id)}
        if sha256 is not None:
            fields.update(sha256_fields(sha256))
        conditions: list[Any] = [
            *({name: value} for name, value in fields.items()),
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
        """Presign a GET that serves ``content_type`` as an attachment named ``filename``.

        The answer says ``Cache-Control: private, no-store``: clinic audio is
        kept by no browser or proxy cache.
        """
        try:
            return self._client.generate_presigned_url(
                "get_object",
                Params={
                    "Bucket": self._bucket,
                    "Key": key,
                    "ResponseContentType": content_type,
                    "ResponseContentDisposition": content_disposition(filename),
                    "ResponseCacheControl": DOWNLOAD_CACHE_CONTROL,
                },
                ExpiresIn=expires_in,
            )
        except (botocore.exceptions.BotoCoreError, AttributeError) as exc:
            raise_translated(exc)

    def object_url(self, key: str) -> str:
        """Return ``s3://bucket/key``."""
        return f"s3://{self._bucket}/{key}"

    def head(self, key: str) -> StoredObject | None:
        """HEAD the object: what S3 reports about it, or None if it is absent.

        Size, type, ETag, encryption, KMS key and version, and (HEAD asks
        with ``ChecksumMode=ENABLED``) the full-object SHA-256 and
        CRC-64/NVME checksums S3 keeps, as hex. A composite checksum of a
        multipart upload is not the body's and is left out. For an SSE-KMS
        object AWS needs ``kms:Decrypt`` on the key for this HEAD (as it does
        for the downloads the same credentials sign).
        """
        try:
            response = self._client.head_object(
                Bucket=self._bucket, Key=key, ChecksumMode="ENABLED"
            )
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) in NOT_FOUND_CODES:
                return None
            raise_translated(exc)
        except botocore.exceptions.BotoCoreError as exc:
            raise_translated(exc)
        return _stored_object(key, response, size=response["ContentLength"])

    def head_and_read(self, key: str, *, length: int) -> tuple[StoredObject, bytes] | None:
        """Return what :meth:`head` reports (no checksums) and the first ``length`` bytes: one GET.

        A ranged GET answers with the headers a HEAD has (type, ETag,
        encryption, KMS key, version, last modified) and ``Content-Range``,
        which names the object's size, so one request does the work of
        :meth:`head` and :meth:`read_range` and both describe the same bytes.
        It carries no full-object checksums (S3 returns none for a ranged
        read): ``sha256`` and ``crc64nvme`` are None; use :meth:`head` where
        they matter. None when the object is absent. With ``direct_reads``
        the GET is sent presigned (see the class); the answer is the same.
        """
        if length < 1:
            msg = "length must be at least 1"
            raise ValueError(msg)
        answer: tuple[Mapping[str, Any], bytes] | None = None
        if self._direct is not None:
            answer = self._direct.head_and_read(key, length)
        if answer is None:
            try:
                response = self._client.get_object(
                    Bucket=self._bucket, Key=key, Range=f"bytes=0-{length - 1}"
                )
                with contextlib.closing(response["Body"]) as body:
                    answer = response, body.read(length)
            except botocore.exceptions.ClientError as exc:
                code = error_code(exc)
                if code in NOT_FOUND_CODES:
                    return None
                if code == "InvalidRange":  # an empty object has no first byte
                    empty = self.head(key)
                    return None if empty is None else (_without_checksums(empty), b"")
                raise_translated(exc)
            except botocore.exceptions.BotoCoreError as exc:
                raise_translated(exc)
        headers, data = answer
        stored = _stored_object(key, headers, size=_total_size(headers, len(data)))
        return _without_checksums(stored), data

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

    def read_pinned(self, key: str, *, etag: str, offset: int, length: int) -> bytes | None:
        """GET ``length`` bytes from ``offset`` with ``IfMatch``: only from the one with ``etag``.

        None when the object is absent or S3 answers 412 (``PreconditionFailed``:
        it has another ETag). The answer's own ``ETag`` must be ``etag`` too, so a
        server that ignores ``If-Match`` cannot hand over another object's bytes.
        """
        byte_range = f"bytes={offset}-{offset + length - 1}"
        try:
            response = self._client.get_object(
                Bucket=self._bucket, Key=key, Range=byte_range, IfMatch=f'"{etag}"'
            )
            with contextlib.closing(response["Body"]) as body:
                if unquote(response.get("ETag")) != etag:
                    return None
                return body.read(length)
        except botocore.exceptions.ClientError as exc:
            code = error_code(exc)
            if code in NOT_FOUND_CODES or code in _PRECONDITION_FAILED_CODES:
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
                        etag=unquote(item.get("ETag")),
                        last_modified=item.get("LastModified"),
                    )
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            raise_translated(exc)


def _stored_object(key: str, response: Mapping[str, Any], *, size: int) -> StoredObject:
    """Return a HEAD's (or a GET's) answer as a StoredObject."""
    composite = response.get("ChecksumType") == "COMPOSITE"
    return StoredObject(
        key=key,
        size=size,
        content_type=response.get("ContentType"),
        etag=unquote(response.get("ETag")),
        server_side_encryption=response.get("ServerSideEncryption"),
        last_modified=response.get("LastModified"),
        kms_key_id=response.get("SSEKMSKeyId"),
        version_id=response.get("VersionId"),
        sha256=None if composite else from_s3_base64(response.get("ChecksumSHA256"), size=32),
        crc64nvme=from_s3_base64(response.get("ChecksumCRC64NVME"), size=8),
    )


def _without_checksums(stored: StoredObject) -> StoredObject:
    return attrs.evolve(stored, sha256=None, crc64nvme=None)


def _total_size(response: Mapping[str, Any], received: int) -> int:
    """Return the object's size from a ranged GET's ``Content-Range: bytes 0-N/SIZE``.

    A server that ignored the range answered 200 with the whole object, whose
    ``Content-Length`` is then the size.
    """
    content_range = response.get("ContentRange")
    if content_range:
        total = str(content_range).rpartition("/")[2]
        if total.isdigit():
            return int(total)
    length = response.get("ContentLength")
    return int(length) if length is not None else received


def _presigns_sigv4_posts(client: S3Client, bucket: str) -> bool:
    """Whether the client presigns POSTs with SigV4 (signed locally, no request is made).

    A client created without an explicit ``signature_version`` reports
    ``s3v4`` in its configuration yet presigns POST policies with SigV2.
    Without credentials nothing can be signed, so nothing is known: True.
    """
    try:
        fields = client.generate_presigned_post(bucket, "signature-version-probe")["fields"]
    except Exception:  # noqa: BLE001 - no credentials (or a stub client): nothing to judge by
        return True
    return bool(fields.get("x-amz-algorithm") == "AWS4-HMAC-SHA256")
