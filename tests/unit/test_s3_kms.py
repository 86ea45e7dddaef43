"""SSE-KMS on S3Storage: the settings, the POST fields and policy, HEAD and the key check (moto).

moto drops the encryption fields of a POST, so the object is stored here with
the ticket's encryption fields sent as PutObject headers; a real POST under a
KMS key is tested on SeaweedFS.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from helppet_recordings import S3Storage
from helppet_recordings.models import StoredObject
from helppet_recordings.storage._encryption import same_kms_key
from helppet_recordings.testing.storage_contract import AUDIO
from tests.support.moto_s3 import BUCKET, moto_bucket

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

KEY = "recordings/staging/kms.m4a"


@pytest.fixture
def s3_client() -> Iterator[S3Client]:
    """An in-process S3 (and KMS) with the recordings bucket."""
    with moto_bucket() as client:
        yield client


@pytest.fixture
def kms_key(s3_client: S3Client) -> dict[str, str]:
    """A customer managed key in moto's KMS: its ``KeyId`` and ``Arn``."""
    metadata = boto3.client("kms", region_name="us-east-1").create_key()["KeyMetadata"]
    return {"KeyId": metadata["KeyId"], "Arn": metadata["Arn"]}


def _conditions(fields: Any) -> list[Any]:
    policy: dict[str, Any] = json.loads(base64.b64decode(fields["policy"]))
    return list(policy["conditions"])


def _store_as_ticket_says(client: S3Client, fields: Any) -> None:
    """PutObject with the encryption the ticket's fields ask for (what S3 does with a POST)."""
    client.put_object(
        Bucket=BUCKET,
        Key=fields["key"],
        Body=AUDIO,
        ContentType=fields["Content-Type"],
        ServerSideEncryption=fields["x-amz-server-side-encryption"],
        SSEKMSKeyId=fields["x-amz-server-side-encryption-aws-kms-key-id"],
    )


def test_default_is_aes256_without_a_key(s3_client: S3Client) -> None:
    """Without arguments uploads must request SSE-S3 and no key is pinned."""
    storage = S3Storage(BUCKET, client=s3_client)
    assert (storage.sse, storage.kms_key_id) == ("AES256", None)
    ticket = storage.create_upload(key=KEY, content_type="audio/mp4", max_size=99, expires_in=60)
    assert "x-amz-server-side-encryption-aws-kms-key-id" not in ticket.fields


@pytest.mark.parametrize(
    ("sse", "kms_key_id", "message"),
    [
        ("aws:kms:dsse", None, "sse must be"),
        ("aes256", None, "sse must be"),
        ("AES256", "1234abcd-12ab-34cd-56ef-1234567890ab", "needs sse='aws:kms'"),
        ("aws:kms", "alias/recordings", "not an alias"),
        ("aws:kms", "arn:aws:kms:us-east-1:123456789012:alias/recordings", "not an alias"),
        ("aws:kms", " ", "without surrounding spaces"),
    ],
)
def test_settings_that_cannot_be_checked_are_refused(
    s3_client: S3Client, sse: str, kms_key_id: str | None, message: str
) -> None:
    """Unknown SSE, a key without aws:kms, an alias or a blank key is a ValueError at once."""
    with pytest.raises(ValueError, match=message):
        S3Storage(BUCKET, client=s3_client, sse=sse, kms_key_id=kms_key_id)


def test_kms_policy_pins_encryption_and_key(s3_client: S3Client, kms_key: dict[str, str]) -> None:
    """With aws:kms and a key the fields carry both and the policy pins both exactly."""
    storage = S3Storage(BUCKET, client=s3_client, sse="aws:kms", kms_key_id=kms_key["Arn"])
    assert (storage.sse, storage.kms_key_id) == ("aws:kms", kms_key["Arn"])
    ticket = storage.create_upload(key=KEY, content_type="audio/mp4", max_size=99, expires_in=60)
    assert ticket.fields["x-amz-server-side-encryption"] == "aws:kms"
    assert ticket.fields["x-amz-server-side-encryption-aws-kms-key-id"] == kms_key["Arn"]
    conditions = _conditions(ticket.fields)
    assert {"x-amz-server-side-encryption": "aws:kms"} in conditions
    assert {"x-amz-server-side-encryption-aws-kms-key-id": kms_key["Arn"]} in conditions
    assert {"x-amz-server-side-encryption": "AES256"} not in conditions


def test_kms_without_a_key_pins_only_the_encryption(s3_client: S3Client) -> None:
    """aws:kms alone (the account's aws/s3 key) pins the encryption and no key."""
    storage = S3Storage(BUCKET, client=s3_client, sse="aws:kms")
    ticket = storage.create_upload(key=KEY, content_type="audio/mp4", max_size=99, expires_in=60)
    assert {"x-amz-server-side-encryption": "aws:kms"} in _conditions(ticket.fields)
    assert "x-amz-server-side-encryption-aws-kms-key-id" not in ticket.fields


def test_object_lands_under_the_ticket_key_and_head_reports_it(
    s3_client: S3Client, kms_key: dict[str, str]
) -> None:
    """Stored as the ticket asks, HEAD reports aws:kms and the key; the key check passes."""
    storage = S3Storage(BUCKET, client=s3_client, sse="aws:kms", kms_key_id=kms_key["KeyId"])
    ticket = storage.create_upload(key=KEY, content_type="audio/mp4", max_size=99, expires_in=60)
    _store_as_ticket_says(s3_client, ticket.fields)
    stored = storage.head(KEY)
    assert stored is not None
    assert (stored.server_side_encryption, stored.kms_key_id) == ("aws:kms", kms_key["KeyId"])
    assert stored.md5 is None  # a KMS ETag is never trusted as the MD5
    assert storage.encryption_matches(stored)
    other = boto3.client("kms", region_name="us-east-1").create_key()["KeyMetadata"]["KeyId"]
    assert not S3Storage(
        BUCKET, client=s3_client, sse="aws:kms", kms_key_id=other
    ).encryption_matches(stored)
    assert not S3Storage(BUCKET, client=s3_client).encryption_matches(stored)


def test_kms_objects_move_with_their_key(s3_client: S3Client, kms_key: dict[str, str]) -> None:
    """Promote copies an SSE-KMS object under the same key and deletes the source."""
    s3_client.put_object(
        Bucket=BUCKET,
        Key=KEY,
        Body=AUDIO,
        ContentType="audio/wav",
        ServerSideEncryption="aws:kms",
        SSEKMSKeyId=kms_key["KeyId"],
    )
    storage = S3Storage(BUCKET, client=s3_client, sse="aws:kms", kms_key_id=kms_key["KeyId"])
    expected = storage.head(KEY)
    assert expected is not None
    moved = storage.promote(KEY, "recordings/u/ctx/kms.wav", expected=expected)
    assert moved is not None
    assert (moved.server_side_encryption, moved.kms_key_id) == ("aws:kms", kms_key["KeyId"])
    assert moved.content_type == "audio/wav"
    assert storage.encryption_matches(moved)
    assert storage.head(KEY) is None


ARN = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"


@pytest.mark.parametrize(
    ("configured", "reported", "same"),
    [
        (None, ARN, True),
        (None, None, True),
        (ARN, ARN, True),
        ("1234abcd-12ab-34cd-56ef-1234567890ab", ARN, True),
        (ARN, "1234abcd-12ab-34cd-56ef-1234567890ab", True),
        ("1234abcd-12ab-34cd-56ef-1234567890ab", None, False),
        ("0000abcd-12ab-34cd-56ef-1234567890ab", ARN, False),
        (ARN.replace("1234abcd", "9999abcd"), ARN, False),
    ],
)
def test_key_ids_match_the_arns_s3_reports(
    configured: str | None, reported: str | None, same: bool
) -> None:
    """A bare key id matches its ARN; any other key, or none reported, does not."""
    assert same_kms_key(configured, reported) is same


def test_encryption_not_reported_does_not_match(s3_client: S3Client) -> None:
    """An object whose encryption HEAD does not report is not taken as encrypted."""
    storage = S3Storage(BUCKET, client=s3_client)
    assert not storage.encryption_matches(StoredObject(key=KEY, size=1))
    assert storage.encryption_matches(
        StoredObject(key=KEY, size=1, server_side_encryption="AES256")
    )
