"""S3Storage multipart methods without a server (moto): encryption, paging, refusals, errors.

Real parts over HTTP, the signed part size and SeaweedFS's limits are tested
end to end in tests/e2e/test_s3_multipart.py.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING

import boto3
import pytest
from botocore.config import Config

from helppet_recordings import InMemoryRepository, RecordingService, RecordingSettings, S3Storage
from helppet_recordings.errors import StorageError, StorageUnavailableError
from helppet_recordings.storage.s3 import _multipart
from tests.support.moto_s3 import BUCKET, moto_bucket
from tests.support.servers import free_ports

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

KEY = "recordings/staging/long.m4a"
BODY = b"\x00\x00\x00\x18ftypM4A " + bytes(range(256)) * 4


@pytest.fixture
def s3_client() -> Iterator[S3Client]:
    """An in-process S3 (and KMS) with the recordings bucket."""
    with moto_bucket() as client:
        yield client


def _upload_single_part(storage: S3Storage, upload_id: str) -> None:
    """Store BODY as part 1 with the client (the HTTP PUT is tested on SeaweedFS)."""
    storage.client.upload_part(Bucket=BUCKET, Key=KEY, UploadId=upload_id, PartNumber=1, Body=BODY)


def test_kms_encryption_and_content_type_are_fixed_at_creation(s3_client: S3Client) -> None:
    """An aws:kms storage creates the upload under its key; the object reports both."""
    key_id = boto3.client("kms", region_name="us-east-1").create_key()["KeyMetadata"]["KeyId"]
    storage = S3Storage(BUCKET, client=s3_client, sse="aws:kms", kms_key_id=key_id)
    upload_id = storage.create_multipart_upload(key=KEY, content_type="audio/mp4")
    _upload_single_part(storage, upload_id)

    listed = storage.list_parts(key=KEY, upload_id=upload_id)
    stored = storage.complete_multipart_upload(
        key=KEY, upload_id=upload_id, parts=[(n, etag) for n, _, etag in listed]
    )

    assert stored.content_type == "audio/mp4"
    assert stored.server_side_encryption == "aws:kms"
    assert storage.encryption_matches(stored)


def test_a_kms_multipart_upload_completes_through_the_service(s3_client: S3Client) -> None:
    """The service starts the upload under the KMS key and completion verifies it."""
    key_id = boto3.client("kms", region_name="us-east-1").create_key()["KeyMetadata"]["KeyId"]
    storage = S3Storage(
        BUCKET, client=s3_client, sse="aws:kms", kms_key_id=key_id, copy_source_if_match=False
    )
    repository = InMemoryRepository()
    service = RecordingService(storage, repository, RecordingSettings())
    user = uuid.uuid4()
    started = service.initiate_multipart_upload(
        user, {"filename": "v.m4a", "content_type": "audio/mp4", "file_size_bytes": len(BODY)}
    )
    recording = repository.get(started.recording_id)
    assert recording is not None and recording.multipart_upload_id is not None
    s3_client.upload_part(
        Bucket=BUCKET,
        Key=started.s3_key,
        UploadId=recording.multipart_upload_id,
        PartNumber=1,
        Body=BODY,
    )

    done = service.complete_upload(user, started.recording_id, {"file_size_bytes": len(BODY)})

    assert done.status.value == "uploaded"
    stored = storage.head(started.s3_key)
    assert stored is not None
    assert (stored.server_side_encryption, stored.content_type) == ("aws:kms", "audio/mp4")
    assert stored.kms_key_id is not None and key_id in stored.kms_key_id


def test_list_parts_reads_every_page(s3_client: S3Client) -> None:
    """Parts over several ListParts pages are all returned, in part order."""
    storage = S3Storage(BUCKET, client=s3_client)
    upload_id = storage.create_multipart_upload(key=KEY, content_type="audio/mp4")
    for number in (5, 1, 4, 2, 3):
        s3_client.upload_part(
            Bucket=BUCKET, Key=KEY, UploadId=upload_id, PartNumber=number, Body=b"x" * number
        )

    listed = _multipart.list_parts(s3_client, BUCKET, key=KEY, upload_id=upload_id, page_size=2)

    assert [(number, size) for number, size, _ in listed] == [(n, n) for n in range(1, 6)]
    assert all(etag and '"' not in etag for _, _, etag in listed)
    assert storage.list_parts(key=KEY, upload_id=upload_id) == listed


def test_complete_refuses_an_etag_storage_does_not_hold(s3_client: S3Client) -> None:
    """An ETag that is not the stored part's is refused by storage as a StorageError."""
    storage = S3Storage(BUCKET, client=s3_client)
    upload_id = storage.create_multipart_upload(key=KEY, content_type="audio/mp4")
    _upload_single_part(storage, upload_id)

    with pytest.raises(StorageError) as raised:
        storage.complete_multipart_upload(key=KEY, upload_id=upload_id, parts=[(1, "0" * 32)])

    assert raised.value.details["storage_error"] == "InvalidPart"
    assert storage.head(KEY) is None


def test_unknown_upload_is_no_such_upload(s3_client: S3Client) -> None:
    """list_parts of an unknown upload id raises StorageError(NoSuchUpload); abort ignores it."""
    storage = S3Storage(BUCKET, client=s3_client)
    with pytest.raises(StorageError) as raised:
        storage.list_parts(key=KEY, upload_id="unknown")
    assert raised.value.details["storage_error"] == "NoSuchUpload"
    storage.abort_multipart_upload(key=KEY, upload_id="unknown")


def test_bad_arguments_raise_value_error(s3_client: S3Client) -> None:
    """A part of no bytes cannot be signed, and an upload completes with at least one part."""
    storage = S3Storage(BUCKET, client=s3_client)
    with pytest.raises(ValueError, match="at least 1 byte"):
        storage.sign_upload_part(key=KEY, upload_id="u", part_number=1, size=0, expires_in=60)
    with pytest.raises(ValueError, match="at least one part"):
        storage.complete_multipart_upload(key=KEY, upload_id="u", parts=[])


def test_unreachable_storage_is_unavailable() -> None:
    """With nothing listening, every call raises StorageUnavailableError (a retry later)."""
    (port,) = free_ports(1)
    client = boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{port}",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        region_name="us-east-1",
        config=Config(signature_version="s3v4", retries={"max_attempts": 1}, connect_timeout=1),
    )
    storage = S3Storage(BUCKET, client=client)
    with pytest.raises(StorageUnavailableError):
        storage.create_multipart_upload(key=KEY, content_type="audio/mp4")
    with pytest.raises(StorageUnavailableError):
        storage.list_parts(key=KEY, upload_id="u")
    with pytest.raises(StorageUnavailableError):
        storage.abort_multipart_upload(key=KEY, upload_id="u")
    with pytest.raises(StorageUnavailableError):
        storage.list_multipart_uploads(prefix="recordings/")
