"""S3Storage.promote: the requests it makes, and how it refuses, on moto and a scripted client."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
from botocore.stub import Stubber

from helppet_recordings import S3Storage, StorageError, StorageUnavailableError
from helppet_recordings.models import StoredObject
from helppet_recordings.storage.s3._storage import MAX_COPY_SIZE
from helppet_recordings.testing.storage_contract import AUDIO
from tests.support.moto_s3 import BUCKET, moto_bucket, s3v4_client

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

SOURCE = "recordings/staging/a.wav"
TARGET = "recordings/u/ctx/a.wav"
ETAG = hashlib.md5(AUDIO).hexdigest()  # noqa: S324 - an S3 ETag


@pytest.fixture
def s3_client() -> Iterator[S3Client]:
    """An in-process S3 with the recordings bucket."""
    with moto_bucket() as client:
        yield client


@pytest.fixture
def stubbed() -> Iterator[tuple[S3Storage, Stubber]]:
    """S3Storage over a client whose answers the test scripts (any unscripted call fails)."""
    client = s3v4_client()
    with Stubber(client) as stubber:
        yield S3Storage(BUCKET, client=client), stubber
        stubber.assert_no_pending_responses()


def _head(etag: str = ETAG, size: int = len(AUDIO), **extra: Any) -> dict[str, Any]:
    return {
        "ContentLength": size,
        "ContentType": "audio/wav",
        "ETag": f'"{etag}"',
        "ServerSideEncryption": "AES256",
        **extra,
    }


def _expected(**changes: Any) -> StoredObject:
    values: dict[str, Any] = {
        "key": SOURCE,
        "size": len(AUDIO),
        "content_type": "audio/wav",
        "etag": ETAG,
        "server_side_encryption": "AES256",
        **changes,
    }
    return StoredObject(**values)


_COPY_PARAMS = {
    "Bucket": BUCKET,
    "Key": TARGET,
    "CopySource": {"Bucket": BUCKET, "Key": SOURCE},
    "CopySourceIfMatch": f'"{ETAG}"',
    "MetadataDirective": "COPY",
    "ServerSideEncryption": "AES256",
}


def test_copy_is_conditioned_on_the_etag_and_keeps_type_and_encryption(
    stubbed: tuple[S3Storage, Stubber],
) -> None:
    """CopyObject if-match with AES256 and COPY metadata, then DELETE: two requests in all."""
    storage, stubber = stubbed
    copied_at = dt.datetime(2026, 5, 1, 12, 30, 15, 250_000, tzinfo=dt.UTC)
    stubber.add_response(
        "copy_object",
        {"CopyObjectResult": {"ETag": f'"{ETAG}"', "LastModified": copied_at}},
        _COPY_PARAMS,
    )
    stubber.add_response("delete_object", {}, {"Bucket": BUCKET, "Key": SOURCE})
    moved = storage.promote(SOURCE, TARGET, expected=_expected(sha256="ab" * 32))
    assert moved == StoredObject(
        key=TARGET,
        size=len(AUDIO),
        content_type="audio/wav",
        etag=ETAG,
        server_side_encryption="AES256",
        last_modified=copied_at.replace(microsecond=0),  # HEAD reports whole seconds
        sha256="ab" * 32,
    )


def test_a_copy_with_another_etag_is_headed_and_compared(
    stubbed: tuple[S3Storage, Stubber],
) -> None:
    """A copy whose ETag is not the source's MD5 proves nothing: HEAD the target, then DELETE."""
    storage, stubber = stubbed
    stubber.add_response("copy_object", {"CopyObjectResult": {"ETag": '"other"'}}, _COPY_PARAMS)
    stubber.add_response(
        "head_object", _head(), {"Bucket": BUCKET, "Key": TARGET, "ChecksumMode": "ENABLED"}
    )
    stubber.add_response("delete_object", {}, {"Bucket": BUCKET, "Key": SOURCE})
    moved = storage.promote(SOURCE, TARGET, expected=_expected())
    assert moved is not None
    assert (moved.key, moved.etag) == (TARGET, ETAG)


def test_a_server_ignoring_copy_conditions_gets_a_head_before_and_after() -> None:
    """With copy_source_if_match=False: HEAD source, CopyObject, HEAD target, DELETE."""
    client = s3v4_client()
    storage = S3Storage(BUCKET, client=client, copy_source_if_match=False)
    with Stubber(client) as stubber:
        stubber.add_response(
            "head_object", _head(), {"Bucket": BUCKET, "Key": SOURCE, "ChecksumMode": "ENABLED"}
        )
        stubber.add_response(
            "copy_object", {"CopyObjectResult": {"ETag": f'"{ETAG}"'}}, _COPY_PARAMS
        )
        stubber.add_response(
            "head_object", _head(), {"Bucket": BUCKET, "Key": TARGET, "ChecksumMode": "ENABLED"}
        )
        stubber.add_response("delete_object", {}, {"Bucket": BUCKET, "Key": SOURCE})
        moved = storage.promote(SOURCE, TARGET, expected=_expected())
        stubber.assert_no_pending_responses()
    assert moved is not None
    assert (moved.key, moved.etag, moved.server_side_encryption) == (TARGET, ETAG, "AES256")


def test_a_changed_source_is_not_copied_where_conditions_are_ignored() -> None:
    """With copy_source_if_match=False a source HEAD that differs from expected stops the move."""
    client = s3v4_client()
    storage = S3Storage(BUCKET, client=client, copy_source_if_match=False)
    with Stubber(client) as stubber:
        stubber.add_response("head_object", _head(etag="0" * 32))
        assert storage.promote(SOURCE, TARGET, expected=_expected()) is None
        stubber.assert_no_pending_responses()


def test_kms_copy_asks_for_the_same_key(stubbed: tuple[S3Storage, Stubber]) -> None:
    """An aws:kms source is copied under the key HEAD reported; its ETag (no MD5) means a HEAD."""
    storage, stubber = stubbed
    key_arn = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    stubber.add_response(
        "copy_object",
        {"CopyObjectResult": {"ETag": '"opaque"'}},
        {
            "Bucket": BUCKET,
            "Key": TARGET,
            "CopySource": {"Bucket": BUCKET, "Key": SOURCE},
            "CopySourceIfMatch": f'"{"f" * 32}"',
            "MetadataDirective": "COPY",
            "ServerSideEncryption": "aws:kms",
            "SSEKMSKeyId": key_arn,
        },
    )
    stubber.add_response(
        "head_object", _head(etag="e" * 32, ServerSideEncryption="aws:kms", SSEKMSKeyId=key_arn)
    )
    stubber.add_response("delete_object", {})
    expected = _expected(etag="f" * 32, server_side_encryption="aws:kms", kms_key_id=key_arn)
    moved = storage.promote(SOURCE, TARGET, expected=expected)
    assert moved is not None
    assert (moved.server_side_encryption, moved.kms_key_id) == ("aws:kms", key_arn)


def test_a_failed_copy_precondition_moves_and_deletes_nothing(
    stubbed: tuple[S3Storage, Stubber],
) -> None:
    """412 from CopyObject (the source changed after it was verified) is None, with no DELETE."""
    storage, stubber = stubbed
    stubber.add_client_error(
        "copy_object", service_error_code="PreconditionFailed", http_status_code=412
    )
    assert storage.promote(SOURCE, TARGET, expected=_expected()) is None


def test_a_source_deleted_before_the_copy_is_none(stubbed: tuple[S3Storage, Stubber]) -> None:
    """NoSuchKey from CopyObject is None, with no DELETE."""
    storage, stubber = stubbed
    stubber.add_client_error("copy_object", service_error_code="NoSuchKey", http_status_code=404)
    assert storage.promote(SOURCE, TARGET, expected=_expected()) is None


def test_an_unavailable_copy_is_retryable_and_keeps_the_source(
    stubbed: tuple[S3Storage, Stubber],
) -> None:
    """A 503 from CopyObject is STORAGE_UNAVAILABLE and nothing is deleted."""
    storage, stubber = stubbed
    stubber.add_client_error("copy_object", service_error_code="SlowDown", http_status_code=503)
    with pytest.raises(StorageUnavailableError):
        storage.promote(SOURCE, TARGET, expected=_expected())


def test_objects_over_five_gib_are_refused_before_any_request(
    stubbed: tuple[S3Storage, Stubber],
) -> None:
    """CopyObject copies at most 5 GiB; a larger object is a StorageError up front."""
    storage, _ = stubbed
    with pytest.raises(StorageError) as info:
        storage.promote(SOURCE, TARGET, expected=_expected(size=MAX_COPY_SIZE + 1))
    assert info.value.details["storage_error"] == "EntityTooLarge"


def test_expected_without_an_etag_is_a_programming_error(
    stubbed: tuple[S3Storage, Stubber],
) -> None:
    """The copy condition needs the ETag HEAD reported."""
    storage, _ = stubbed
    with pytest.raises(ValueError, match="ETag"):
        storage.promote(SOURCE, TARGET, expected=_expected(etag=None))


def _replace_source_before_copy(client: S3Client, body: bytes) -> list[int]:
    """Make the next CopyObject race a replayed upload: the source changes just before it."""
    statuses: list[int] = []

    def replay(**_: Any) -> None:
        client.meta.events.unregister("before-call.s3.CopyObject", replay)
        client.put_object(
            Bucket=BUCKET,
            Key=SOURCE,
            Body=body,
            ContentType="audio/wav",
            ServerSideEncryption="AES256",
        )

    def record(http_response: Any, **_: Any) -> None:
        statuses.append(http_response.status_code)

    client.meta.events.register("before-call.s3.CopyObject", replay)
    client.meta.events.register("after-call.s3.CopyObject", record)
    return statuses


def test_a_copy_of_changed_bytes_by_a_lax_server_is_removed(s3_client: S3Client) -> None:
    """A server ignoring the copy condition (moto) copies replayed bytes: caught, deleted."""
    storage = S3Storage(BUCKET, client=s3_client)
    s3_client.put_object(
        Bucket=BUCKET,
        Key=SOURCE,
        Body=AUDIO,
        ContentType="audio/wav",
        ServerSideEncryption="AES256",
    )
    expected = storage.head(SOURCE)
    assert expected is not None
    statuses = _replace_source_before_copy(s3_client, AUDIO[::-1])
    assert storage.promote(SOURCE, TARGET, expected=expected) is None
    assert statuses == [200]  # moto copied the replayed bytes despite the condition
    assert storage.head(TARGET) is None
    assert storage.read_range(SOURCE, offset=0, length=len(AUDIO)) == AUDIO[::-1]


def test_a_source_without_reported_encryption_is_copied_as_configured() -> None:
    """Where HEAD reported no encryption, the copy asks for the storage's own (here SSE-KMS)."""
    key_arn = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    client = s3v4_client()
    storage = S3Storage(BUCKET, client=client, sse="aws:kms", kms_key_id=key_arn)
    plain = {"ContentLength": len(AUDIO), "ContentType": "audio/wav", "ETag": f'"{ETAG}"'}
    with Stubber(client) as stubber:
        stubber.add_response(
            "copy_object",
            {},
            {
                "Bucket": BUCKET,
                "Key": TARGET,
                "CopySource": {"Bucket": BUCKET, "Key": SOURCE},
                "CopySourceIfMatch": f'"{ETAG}"',
                "MetadataDirective": "COPY",
                "ServerSideEncryption": "aws:kms",
                "SSEKMSKeyId": key_arn,
            },
        )
        stubber.add_response(
            "head_object", {**plain, "ServerSideEncryption": "aws:kms", "SSEKMSKeyId": key_arn}
        )
        stubber.add_response("delete_object", {})
        moved = storage.promote(SOURCE, TARGET, expected=_expected(server_side_encryption=None))
        stubber.assert_no_pending_responses()
    assert moved is not None
    assert storage.encryption_matches(moved)


def test_a_target_gone_right_after_the_copy_is_none_and_the_source_stays(
    stubbed: tuple[S3Storage, Stubber],
) -> None:
    """If the copy cannot be found again, nothing counts as moved and the source is kept."""
    storage, stubber = stubbed
    stubber.add_response("copy_object", {})
    stubber.add_client_error("head_object", service_error_code="404", http_status_code=404)
    assert storage.promote(SOURCE, TARGET, expected=_expected()) is None
