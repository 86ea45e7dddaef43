"""S3Storage multipart uploads on SeaweedFS, with parts sent as real HTTP PUTs to presigned URLs.

What SeaweedFS 4.x does, as these tests assert: it enforces the 5 MiB minimum
part size at completion (a smaller part that is not the last gets 400
``EntityTooSmall``, and the upload stays open), while a part of exactly 5 MiB
is accepted. A presigned part PUT signs ``content-length``; a body of any
other length is refused with 403 ``SignatureDoesNotMatch`` and nothing of it
is stored; so is a chunked body without ``Content-Length``. A part URL past
its expiry gets 403 ``AccessDenied``. Aborting an upload it no longer knows
is not an error. Unlike AWS, which keeps only the last upload of a part
number, SeaweedFS lists every upload of a retried part (``list_parts`` keeps
the most recent), and completion uses whichever ETag it is given. Like AWS, it completes an upload
from non-consecutive part numbers (a gap is not refused), so the caller must
check the listed parts against the plan before completing.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from helppet_recordings import S3Storage
from helppet_recordings.errors import StorageError
from helppet_recordings.multipart import MIN_PART_SIZE, PartPlan, PlannedPart, plan_parts
from tests.support.seaweedfs import SeaweedEndpoint, make_client

pytestmark = pytest.mark.e2e

SOURCE = random.Random(7).randbytes(3 * MIN_PART_SIZE + 12_345)
"""Four parts at the smallest part size SeaweedFS accepts: three of 5 MiB and a short last one."""

PLAN = plan_parts(len(SOURCE), preferred_part_size=MIN_PART_SIZE)


@pytest.fixture
def storage(seaweed: SeaweedEndpoint, seaweed_bucket: str) -> S3Storage:
    """S3Storage on a fresh SeaweedFS bucket."""
    return S3Storage(seaweed_bucket, client=make_client(seaweed))


def _key() -> str:
    return f"recordings/{uuid.uuid4()}.m4a"


def _put_parts(
    storage: S3Storage,
    key: str,
    upload_id: str,
    parts: Iterable[PlannedPart],
    source: bytes = SOURCE,
) -> list[httpx.Response]:
    """PUT each part's bytes to its own presigned URL, four at a time, in the order given."""

    def put(part: PlannedPart) -> httpx.Response:
        url = storage.sign_upload_part(
            key=key,
            upload_id=upload_id,
            part_number=part.part_number,
            size=part.size,
            expires_in=300,
        )
        body = source[part.offset : part.offset + part.size]
        return httpx.put(url, content=body, timeout=60)

    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(put, parts))


def _body(storage: S3Storage, key: str) -> bytes:
    return storage.client.get_object(Bucket=storage.bucket, Key=key)["Body"].read()


def _complete_from_storage(storage: S3Storage, key: str, upload_id: str) -> None:
    listed = storage.list_parts(key=key, upload_id=upload_id)
    storage.complete_multipart_upload(
        key=key, upload_id=upload_id, parts=[(number, etag) for number, _, etag in listed]
    )


def test_plan_is_four_parts_of_the_minimum_size() -> None:
    """The test source is cut as assumed below: three 5 MiB parts and a short fourth."""
    assert PLAN.part_size == MIN_PART_SIZE
    assert [part.size for part in PLAN.parts] == [MIN_PART_SIZE] * 3 + [12_345]


def test_parts_out_of_order_and_in_parallel_assemble_the_source(storage: S3Storage) -> None:
    """Parts PUT in reverse order by four threads, completed from list_parts, equal the source."""
    key = _key()
    upload_id = storage.create_multipart_upload(key=key, content_type="audio/mp4")
    responses = _put_parts(storage, key, upload_id, reversed(PLAN.parts))
    assert [response.status_code for response in responses] == [200] * 4

    listed = storage.list_parts(key=key, upload_id=upload_id)
    assert [(number, size) for number, size, _ in listed] == [
        (part.part_number, part.size) for part in PLAN.parts
    ]
    stored = storage.complete_multipart_upload(
        key=key, upload_id=upload_id, parts=[(number, etag) for number, _, etag in listed]
    )

    assert stored.size == len(SOURCE)
    assert stored.content_type == "audio/mp4"
    assert stored.server_side_encryption == "AES256"
    assert stored.etag is not None
    assert stored.etag.endswith("-4")
    assert _body(storage, key) == SOURCE
    assert storage.list_multipart_uploads(prefix="recordings/") == []


def test_missing_part_is_resumed_by_sending_only_that_part(storage: S3Storage) -> None:
    """After an interruption list_parts shows the gap; only the missing part's bytes are sent."""
    key = _key()
    upload_id = storage.create_multipart_upload(key=key, content_type="audio/mp4")
    first_round = [part for part in PLAN.parts if part.part_number != 2]
    assert all(r.is_success for r in _put_parts(storage, key, upload_id, first_round))

    held = {number for number, _, _ in storage.list_parts(key=key, upload_id=upload_id)}
    assert held == {1, 3, 4}
    missing = [part for part in PLAN.parts if part.part_number not in held]
    resumed = _put_parts(storage, key, upload_id, missing)

    sent = sum(int(r.request.headers["content-length"]) for r in resumed)
    assert [r.status_code for r in resumed] == [200]
    assert sent == PLAN.part(2).size == MIN_PART_SIZE
    _complete_from_storage(storage, key, upload_id)
    assert _body(storage, key) == SOURCE


@pytest.mark.parametrize("delta", [-1, 1])
def test_part_of_the_wrong_size_is_refused_by_storage(storage: S3Storage, delta: int) -> None:
    """A body one byte short or long of the signed size gets 403 and is not stored."""
    key = _key()
    upload_id = storage.create_multipart_upload(key=key, content_type="audio/mp4")
    part = PLAN.part(1)
    url = storage.sign_upload_part(
        key=key, upload_id=upload_id, part_number=1, size=part.size, expires_in=300
    )

    response = httpx.put(url, content=SOURCE[: part.size + delta], timeout=60)

    assert response.status_code == 403
    assert "<Code>SignatureDoesNotMatch</Code>" in response.text
    assert storage.list_parts(key=key, upload_id=upload_id) == []
    storage.abort_multipart_upload(key=key, upload_id=upload_id)


def test_seaweedfs_enforces_the_minimum_part_size(storage: S3Storage) -> None:
    """Completing with a part below 5 MiB that is not the last fails with EntityTooSmall."""
    source = bytes(range(256)) * 8
    plan: PartPlan = plan_parts(len(source), min_part_size=1, preferred_part_size=1024)
    key = _key()
    upload_id = storage.create_multipart_upload(key=key, content_type="audio/mp4")
    assert all(r.is_success for r in _put_parts(storage, key, upload_id, plan.parts, source))

    with pytest.raises(StorageError) as raised:
        _complete_from_storage(storage, key, upload_id)

    assert raised.value.details["storage_error"] == "EntityTooSmall"
    assert storage.head(key) is None
    assert len(storage.list_parts(key=key, upload_id=upload_id)) == 2
    storage.abort_multipart_upload(key=key, upload_id=upload_id)


def test_abandoned_upload_is_aborted(storage: S3Storage) -> None:
    """Abort drops an upload with parts: none listed afterwards, and aborting again is fine."""
    key = _key()
    upload_id = storage.create_multipart_upload(key=key, content_type="audio/mp4")
    assert all(r.is_success for r in _put_parts(storage, key, upload_id, PLAN.parts[-1:]))
    uploads = storage.list_multipart_uploads(prefix="recordings/")
    assert [(k, u) for k, u, _ in uploads] == [(key, upload_id)]

    storage.abort_multipart_upload(key=key, upload_id=upload_id)
    storage.abort_multipart_upload(key=key, upload_id=upload_id)

    assert storage.list_multipart_uploads(prefix="recordings/") == []
    with pytest.raises(StorageError) as raised:
        storage.list_parts(key=key, upload_id=upload_id)
    assert raised.value.details["storage_error"] == "NoSuchUpload"
    assert storage.head(key) is None


def test_listing_is_narrowed_by_prefix(storage: S3Storage) -> None:
    """list_multipart_uploads returns only the uploads under the prefix, with when they began."""
    inside = storage.create_multipart_upload(key="recordings/a.m4a", content_type="audio/mp4")
    outside = storage.create_multipart_upload(key="staging/b.m4a", content_type="audio/mp4")

    listed = storage.list_multipart_uploads(prefix="recordings/")

    assert [(k, u) for k, u, _ in listed] == [("recordings/a.m4a", inside)]
    assert listed[0][2].tzinfo is not None
    storage.abort_multipart_upload(key="recordings/a.m4a", upload_id=inside)
    storage.abort_multipart_upload(key="staging/b.m4a", upload_id=outside)


def test_retried_part_is_listed_once_and_the_last_upload_wins(storage: S3Storage) -> None:
    """A part sent twice is listed once, with the later upload's ETag, and that is what lands."""
    key = _key()
    upload_id = storage.create_multipart_upload(key=key, content_type="audio/mp4")
    url = storage.sign_upload_part(
        key=key, upload_id=upload_id, part_number=1, size=10, expires_in=300
    )
    assert httpx.put(url, content=b"y" * 10, timeout=60).status_code == 200
    time.sleep(1.1)  # SeaweedFS reports LastModified in whole seconds
    assert httpx.put(url, content=b"z" * 10, timeout=60).status_code == 200

    listed = storage.list_parts(key=key, upload_id=upload_id)

    assert [(number, size) for number, size, _ in listed] == [(1, 10)]
    _complete_from_storage(storage, key, upload_id)
    assert _body(storage, key) == b"z" * 10


def test_completion_does_not_refuse_a_gap_in_part_numbers(storage: S3Storage) -> None:
    """Parts 1 and 4 complete into a shorter object: checking against the plan is the caller's."""
    key = _key()
    upload_id = storage.create_multipart_upload(key=key, content_type="audio/mp4")
    sent = [PLAN.part(1), PLAN.part(4)]
    assert all(r.is_success for r in _put_parts(storage, key, upload_id, sent))

    _complete_from_storage(storage, key, upload_id)

    assert _body(storage, key) == SOURCE[:MIN_PART_SIZE] + SOURCE[-12_345:]


def test_chunked_part_without_content_length_is_refused(storage: S3Storage) -> None:
    """A part streamed chunked (no Content-Length) does not match the signature: 403."""
    key = _key()
    upload_id = storage.create_multipart_upload(key=key, content_type="audio/mp4")
    url = storage.sign_upload_part(
        key=key, upload_id=upload_id, part_number=1, size=10, expires_in=300
    )

    response = httpx.put(url, content=iter([b"x" * 5, b"x" * 5]), timeout=60)

    assert "content-length" not in response.request.headers
    assert response.status_code == 403
    assert "<Code>SignatureDoesNotMatch</Code>" in response.text
    assert storage.list_parts(key=key, upload_id=upload_id) == []
    storage.abort_multipart_upload(key=key, upload_id=upload_id)


def test_expired_part_url_is_refused(storage: S3Storage) -> None:
    """A part URL used after its expiry gets 403 AccessDenied; a fresh URL then works."""
    key = _key()
    upload_id = storage.create_multipart_upload(key=key, content_type="audio/mp4")
    url = storage.sign_upload_part(
        key=key, upload_id=upload_id, part_number=1, size=10, expires_in=1
    )
    time.sleep(2.1)

    response = httpx.put(url, content=b"x" * 10, timeout=60)

    assert response.status_code == 403
    assert "<Code>AccessDenied</Code>" in response.text
    assert storage.list_parts(key=key, upload_id=upload_id) == []
    fresh = storage.sign_upload_part(
        key=key, upload_id=upload_id, part_number=1, size=10, expires_in=300
    )
    assert httpx.put(fresh, content=b"x" * 10, timeout=60).status_code == 200
    assert [size for _, size, _ in storage.list_parts(key=key, upload_id=upload_id)] == [10]
    storage.abort_multipart_upload(key=key, upload_id=upload_id)
