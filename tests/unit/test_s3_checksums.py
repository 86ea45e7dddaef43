"""Checksums that mean what they say: HEAD's SHA-256 and CRC-64/NVME, a declared SHA-256, MD5."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
from botocore.stub import Stubber
from hypothesis import given
from hypothesis import strategies as st

from helppet_recordings import S3Storage
from helppet_recordings.models import StoredObject
from helppet_recordings.storage._checksums import from_s3_base64, sha256_fields
from helppet_recordings.testing.storage_contract import AUDIO
from tests.support.moto_s3 import BUCKET, moto_bucket, s3v4_client

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

KEY = "recordings/staging/sum.wav"
SHA256 = hashlib.sha256(AUDIO).hexdigest()


def _b64(hex_digest: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_digest)).decode()


@pytest.fixture
def s3_client() -> Iterator[S3Client]:
    """An in-process S3 with the recordings bucket."""
    with moto_bucket() as client:
        yield client


@pytest.fixture
def stubbed() -> Iterator[tuple[S3Storage, Stubber]]:
    """S3Storage over a client whose answers the test scripts."""
    client = s3v4_client()
    with Stubber(client) as stubber:
        yield S3Storage(BUCKET, client=client), stubber
        stubber.assert_no_pending_responses()


def _head(**checksums: Any) -> dict[str, Any]:
    return {"ContentLength": len(AUDIO), "ETag": '"etag"', **checksums}


def test_head_asks_for_checksums_and_reports_them_as_hex(
    stubbed: tuple[S3Storage, Stubber],
) -> None:
    """HEAD sends ChecksumMode=ENABLED; base64 SHA-256 and CRC-64/NVME come back as hex."""
    storage, stubber = stubbed
    crc = "ae8b14860a799888"
    stubber.add_response(
        "head_object",
        _head(ChecksumSHA256=_b64(SHA256), ChecksumCRC64NVME=_b64(crc), ChecksumType="FULL_OBJECT"),
        {"Bucket": BUCKET, "Key": KEY, "ChecksumMode": "ENABLED"},
    )
    stored = storage.head(KEY)
    assert stored is not None
    assert (stored.sha256, stored.crc64nvme) == (SHA256, crc)


def test_a_composite_checksum_is_not_the_body_s(stubbed: tuple[S3Storage, Stubber]) -> None:
    """A multipart upload's checksum of part checksums is not reported as the SHA-256."""
    storage, stubber = stubbed
    stubber.add_response(
        "head_object", _head(ChecksumSHA256=f"{_b64(SHA256)}-2", ChecksumType="COMPOSITE")
    )
    stubber.add_response(
        "head_object", _head(ChecksumSHA256=_b64(SHA256), ChecksumType="COMPOSITE")
    )
    first, second = storage.head(KEY), storage.head(KEY)
    assert first is not None
    assert second is not None
    assert (first.sha256, second.sha256) == (None, None)


@pytest.mark.parametrize(
    ("value", "size", "expected"),
    [
        (None, 32, None),
        ("", 32, None),
        ("not base64!", 32, None),
        (_b64("ab" * 16), 32, None),  # 16 bytes is no SHA-256
        (_b64("ab" * 32), 32, "ab" * 32),
        (_b64("0123456789abcdef"), 8, "0123456789abcdef"),
    ],
)
def test_reported_checksums_are_decoded_strictly(
    value: str | None, size: int, expected: str | None
) -> None:
    """Only well-formed base64 of the right length becomes a checksum."""
    assert from_s3_base64(value, size=size) == expected


def test_moto_reports_the_sha256_it_was_given(s3_client: S3Client) -> None:
    """An object stored with a SHA-256 checksum reports exactly the body's digest."""
    s3_client.put_object(Bucket=BUCKET, Key=KEY, Body=AUDIO, ChecksumAlgorithm="SHA256")
    stored = S3Storage(BUCKET, client=s3_client).head(KEY)
    assert stored is not None
    assert stored.sha256 == SHA256


def _conditions(fields: Any) -> list[Any]:
    policy: dict[str, Any] = json.loads(base64.b64decode(fields["policy"]))
    return list(policy["conditions"])


def test_a_declared_sha256_is_pinned_in_the_policy(s3_client: S3Client) -> None:
    """The fields carry SHA256 and the digest in base64; the policy pins both exactly."""
    storage = S3Storage(BUCKET, client=s3_client)
    ticket = storage.create_upload(
        key=KEY, content_type="audio/wav", max_size=99, expires_in=60, sha256=SHA256.upper()
    )
    assert ticket.fields["x-amz-checksum-algorithm"] == "SHA256"
    assert ticket.fields["x-amz-checksum-sha256"] == _b64(SHA256)
    conditions = _conditions(ticket.fields)
    assert {"x-amz-checksum-algorithm": "SHA256"} in conditions
    assert {"x-amz-checksum-sha256": _b64(SHA256)} in conditions


def test_without_a_declared_sha256_no_checksum_field_is_sent(s3_client: S3Client) -> None:
    """A ticket without a checksum neither carries nor pins one."""
    ticket = S3Storage(BUCKET, client=s3_client).create_upload(
        key=KEY, content_type="audio/wav", max_size=99, expires_in=60
    )
    assert not any(name.startswith("x-amz-checksum") for name in ticket.fields)
    assert not any("x-amz-checksum" in json.dumps(c) for c in _conditions(ticket.fields))


@pytest.mark.parametrize("bad", ["", "ab" * 31, "zz" * 32, _b64(SHA256), SHA256 + "00"])
def test_a_declared_sha256_must_be_hex(s3_client: S3Client, bad: str) -> None:
    """Anything but 64 hex characters is a ValueError, before any signing."""
    with pytest.raises(ValueError, match="64 hex"):
        S3Storage(BUCKET, client=s3_client).create_upload(
            key=KEY, content_type="audio/wav", max_size=99, expires_in=60, sha256=bad
        )


@given(st.binary(min_size=32, max_size=32))
def test_sha256_fields_round_trip(digest: bytes) -> None:
    """The base64 field decodes to the digest given in hex."""
    fields = sha256_fields(digest.hex())
    assert base64.b64decode(fields["x-amz-checksum-sha256"]) == digest
    assert from_s3_base64(fields["x-amz-checksum-sha256"], size=32) == digest.hex()


@pytest.mark.parametrize(
    ("etag", "encryption", "md5"),
    [
        ("48477cc4c621a7edd47f2e7da0c59029", "AES256", "48477cc4c621a7edd47f2e7da0c59029"),
        ("48477CC4C621A7EDD47F2E7DA0C59029", None, "48477cc4c621a7edd47f2e7da0c59029"),
        ("48477cc4c621a7edd47f2e7da0c59029", "aws:kms", None),
        ("48477cc4c621a7edd47f2e7da0c59029", "aws:kms:dsse", None),
        ("30dcfd3901d1c613b7fb532281748544-2", "AES256", None),
        (None, "AES256", None),
    ],
)
def test_md5_is_taken_only_from_a_single_part_non_kms_etag(
    etag: str | None, encryption: str | None, md5: str | None
) -> None:
    """A KMS ETag or a multipart ETag is never reported as the MD5."""
    stored = StoredObject(key=KEY, size=1, etag=etag, server_side_encryption=encryption)
    assert stored.md5 == md5
