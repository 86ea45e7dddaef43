"""S3Storage multipart uploads on SeaweedFS, with parts sent as real HTTP PUTs to presigned URLs.

:class:`TestS3MultipartContract` runs the shared multipart contract; the
tests after it pin what is particular to SeaweedFS.

What SeaweedFS 4.x does, as these tests assert: it enforces the 5 MiB minimum
part size at completion (a smaller part that is not the last gets 400
``EntityTooSmall``, and the upload stays open), while a part of exactly 5 MiB
is accepted. A presigned part PUT signs ``content-length``; a body of any
other length is refused with 403 ``SignatureDoesNotMatch`` and nothing of it
is stored; so is a chunked body without ``Content-Length``. A part URL past
its expiry gets 403 ``AccessDenied``. Aborting an upload it no longer knows
is not an error, and a part sent to a completed or aborted upload is refused.
Unlike AWS, which keeps only the last upload of a part number, SeaweedFS
lists every upload of a retried part (``list_parts`` keeps the most recent,
by a ``LastModified`` in whole seconds), and completion uses whichever ETag
it is given. Like AWS, it completes an upload from non-consecutive part
numbers (a gap is not refused), so the caller must check the listed parts
against the plan before completing.
"""

from __future__ import annotations

import uuid

import httpx
import pytest

from helppet_recordings import S3Storage
from helppet_recordings.multipart import MIN_PART_SIZE
from helppet_recordings.testing.multipart_contract import (
    LAST_PART_SIZE,
    PLAN,
    SOURCE,
    MultipartContract,
    SendPart,
)
from tests.support.seaweedfs import SeaweedEndpoint, make_client

pytestmark = pytest.mark.e2e


@pytest.fixture
def storage(seaweed: SeaweedEndpoint, seaweed_bucket: str) -> S3Storage:
    """S3Storage on a fresh SeaweedFS bucket."""
    return S3Storage(seaweed_bucket, client=make_client(seaweed))


def _send(url: str, body: bytes) -> bool:
    """PUT a part; True on 2xx, False on a 4xx refusal (never a 5xx)."""
    response = httpx.put(url, content=body, timeout=60)
    assert response.status_code < 500, response.text
    return response.is_success


class TestS3MultipartContract(MultipartContract):
    """The multipart contract on SeaweedFS, every part a real presigned PUT."""

    retry_pause = 1.1  # SeaweedFS reports LastModified in whole seconds

    @pytest.fixture
    def storage(self, seaweed: SeaweedEndpoint, seaweed_bucket: str) -> S3Storage:
        """S3Storage on a fresh SeaweedFS bucket."""
        return S3Storage(seaweed_bucket, client=make_client(seaweed))

    @pytest.fixture
    def send_part(self, storage: S3Storage) -> SendPart:
        """httpx.put to the presigned URL."""
        return _send


def _key() -> str:
    return f"recordings/{uuid.uuid4()}.m4a"


def _sign(storage: S3Storage, key: str, upload_id: str, part_number: int, size: int) -> str:
    return storage.sign_upload_part(
        key=key, upload_id=upload_id, part_number=part_number, size=size, expires_in=300
    )


def test_completion_does_not_refuse_a_gap_in_part_numbers(storage: S3Storage) -> None:
    """Parts 1 and 3 complete into a shorter object: checking against the plan is the caller's."""
    key = _key()
    upload_id = storage.create_multipart_upload(key=key, content_type="audio/mp4")
    for part in (PLAN.part(1), PLAN.part(3)):
        body = SOURCE[part.offset : part.offset + part.size]
        assert _send(_sign(storage, key, upload_id, part.part_number, part.size), body)
    listed = storage.list_parts(key=key, upload_id=upload_id)

    storage.complete_multipart_upload(
        key=key, upload_id=upload_id, parts=[(part.part_number, part.etag) for part in listed]
    )

    body = storage.client.get_object(Bucket=storage.bucket, Key=key)["Body"].read()
    assert body == SOURCE[:MIN_PART_SIZE] + SOURCE[-LAST_PART_SIZE:]


@pytest.mark.parametrize("delta", [-1, 1])
def test_part_of_the_wrong_size_breaks_the_signature(storage: S3Storage, delta: int) -> None:
    """A body one byte off the signed length gets 403 SignatureDoesNotMatch."""
    key = _key()
    upload_id = storage.create_multipart_upload(key=key, content_type="audio/mp4")

    response = httpx.put(_sign(storage, key, upload_id, 1, 10), content=b"x" * (10 + delta))

    assert response.status_code == 403
    assert "<Code>SignatureDoesNotMatch</Code>" in response.text
    storage.abort_multipart_upload(key=key, upload_id=upload_id)


def test_chunked_part_without_content_length_is_refused(storage: S3Storage) -> None:
    """A part streamed chunked (no Content-Length) does not match the signature: 403."""
    key = _key()
    upload_id = storage.create_multipart_upload(key=key, content_type="audio/mp4")
    url = _sign(storage, key, upload_id, 1, 10)

    response = httpx.put(url, content=iter([b"x" * 5, b"x" * 5]), timeout=60)

    assert "content-length" not in response.request.headers
    assert response.status_code == 403
    assert "<Code>SignatureDoesNotMatch</Code>" in response.text
    assert storage.list_parts(key=key, upload_id=upload_id) == []
    storage.abort_multipart_upload(key=key, upload_id=upload_id)
