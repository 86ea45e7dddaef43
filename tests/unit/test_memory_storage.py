"""InMemoryStorage runs the storage contract and enforces its tickets' policy itself."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping

import pytest

from helppet_recordings import InMemoryStorage, StorageError
from helppet_recordings.models import UploadTicket
from helppet_recordings.ports import RecordingStorage
from helppet_recordings.testing.checksum_contract import ChecksumPinningContract
from helppet_recordings.testing.storage_contract import (
    AUDIO,
    PinnedReadsContract,
    PromoteContract,
    PutObject,
    SendUpload,
    StorageContract,
)


class TestInMemoryStorageContract(
    StorageContract, PromoteContract, PinnedReadsContract, ChecksumPinningContract
):
    """The shared storage contract on the in-memory backend."""

    @pytest.fixture
    def storage(self) -> RecordingStorage:
        return InMemoryStorage()

    @pytest.fixture
    def put_object(self, storage: RecordingStorage) -> PutObject:
        assert isinstance(storage, InMemoryStorage)

        def put(key: str, body: bytes, content_type: str) -> None:
            storage.put_object(key, body, content_type=content_type)

        return put

    @pytest.fixture
    def send_upload(self, storage: RecordingStorage) -> SendUpload:
        assert isinstance(storage, InMemoryStorage)

        def send(ticket: UploadTicket, body: bytes, fields: Mapping[str, str]) -> bool:
            try:
                storage.receive_upload(fields, body)
            except StorageError:
                return False
            return True

        return send


class FakeTime:
    """Seconds since the epoch that a test moves."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeTime:
    """The clock under test."""
    return FakeTime()


@pytest.fixture
def storage(clock: FakeTime) -> InMemoryStorage:
    """The storage under test."""
    return InMemoryStorage(clock=clock)


def test_a_ticket_upload_lands_encrypted(storage: InMemoryStorage) -> None:
    """Bytes handed over with a valid ticket are stored under its key, AES256, with an MD5 ETag."""
    ticket = storage.create_upload(
        key="r/a.wav", content_type="audio/wav", max_size=10_000, expires_in=60
    )
    stored = storage.receive_upload(ticket.fields, AUDIO[:100])
    assert (stored.key, stored.size, stored.server_side_encryption) == ("r/a.wav", 100, "AES256")
    assert storage.read_range("r/a.wav", offset=0, length=100) == AUDIO[:100]


@pytest.mark.parametrize(
    ("change", "body", "reason"),
    [
        ({"key": "r/other.wav"}, b"x", "key"),
        ({"Content-Type": "audio/mpeg"}, b"x", "content_type"),
        ({"x-amz-server-side-encryption": "aws:kms"}, b"x", "encryption"),
        ({"signature": "0" * 64}, b"x", "signature"),
        ({}, b"", "size"),
        ({}, b"x" * 101, "size"),
    ],
)
def test_a_ticket_upload_breaking_the_policy_is_refused(
    storage: InMemoryStorage, change: dict[str, str], body: bytes, reason: str
) -> None:
    """Each rule of the policy refuses on its own, and nothing is stored."""
    ticket = storage.create_upload(
        key="r/a.wav", content_type="audio/wav", max_size=100, expires_in=60
    )
    with pytest.raises(StorageError) as info:
        storage.receive_upload({**ticket.fields, **change}, body)
    assert info.value.details["reason"] == reason
    assert list(storage.iter_objects("")) == []


def test_an_expired_ticket_is_refused(storage: InMemoryStorage, clock: FakeTime) -> None:
    """A ticket stops working when its expiry passes."""
    ticket = storage.create_upload(
        key="r/a.wav", content_type="audio/wav", max_size=100, expires_in=60
    )
    clock.now += 61
    with pytest.raises(StorageError):
        storage.receive_upload(ticket.fields, b"late")
    assert storage.head("r/a.wav") is None


def test_download_urls_are_signed_expire_and_carry_no_filename(
    storage: InMemoryStorage, clock: FakeTime
) -> None:
    """A download URL reads the object until it expires; a tampered one is refused."""
    storage.put_object("r/a.wav", b"audio", content_type="audio/wav")
    url = storage.create_download_url(
        key="r/a.wav", expires_in=30, content_type="audio/wav", filename="Bello visit.wav"
    )
    assert "Bello" not in url
    assert storage.download(url) == b"audio"
    with pytest.raises(StorageError):
        storage.download(url.replace("r/a.wav", "r/b.wav"))
    clock.now += 31
    with pytest.raises(StorageError):
        storage.download(url)


KMS_KEY = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"


@pytest.fixture
def kms_storage(clock: FakeTime) -> InMemoryStorage:
    """A store whose tickets pin aws:kms and one key."""
    return InMemoryStorage(clock=clock, sse="aws:kms", kms_key_id=KMS_KEY)


def test_a_kms_ticket_lands_under_its_key_with_an_etag_that_is_not_the_md5(
    kms_storage: InMemoryStorage,
) -> None:
    """Fields carry aws:kms and the key; the object reports both and no MD5."""
    assert (kms_storage.sse, kms_storage.kms_key_id) == ("aws:kms", KMS_KEY)
    ticket = kms_storage.create_upload(
        key="r/k.wav", content_type="audio/wav", max_size=10_000, expires_in=60
    )
    assert ticket.fields["x-amz-server-side-encryption"] == "aws:kms"
    assert ticket.fields["x-amz-server-side-encryption-aws-kms-key-id"] == KMS_KEY
    stored = kms_storage.receive_upload(ticket.fields, AUDIO[:100])
    assert (stored.server_side_encryption, stored.kms_key_id) == ("aws:kms", KMS_KEY)
    assert stored.etag != hashlib.md5(AUDIO[:100]).hexdigest()  # noqa: S324 - an S3 ETag
    assert stored.md5 is None
    assert kms_storage.encryption_matches(stored)
    assert not InMemoryStorage().encryption_matches(stored)


@pytest.mark.parametrize(
    "change",
    [
        {"x-amz-server-side-encryption": "AES256"},
        {"x-amz-server-side-encryption-aws-kms-key-id": KMS_KEY.replace("1234abcd", "9999abcd")},
    ],
)
def test_a_kms_ticket_with_other_encryption_is_refused(
    kms_storage: InMemoryStorage, change: dict[str, str]
) -> None:
    """Another encryption or another key breaks the policy; nothing is stored."""
    ticket = kms_storage.create_upload(
        key="r/k.wav", content_type="audio/wav", max_size=100, expires_in=60
    )
    with pytest.raises(StorageError) as info:
        kms_storage.receive_upload({**ticket.fields, **change}, b"x")
    assert info.value.details["reason"] == "encryption"
    assert kms_storage.head("r/k.wav") is None


def test_a_kms_ticket_without_its_key_field_is_refused(kms_storage: InMemoryStorage) -> None:
    """Dropping the key field breaks the policy."""
    ticket = kms_storage.create_upload(
        key="r/k.wav", content_type="audio/wav", max_size=100, expires_in=60
    )
    fields = dict(ticket.fields)
    del fields["x-amz-server-side-encryption-aws-kms-key-id"]
    with pytest.raises(StorageError):
        kms_storage.receive_upload(fields, b"x")


def test_promoting_a_kms_object_keeps_its_key(kms_storage: InMemoryStorage) -> None:
    """The moved object keeps aws:kms and the key, with a new opaque ETag as S3 gives a copy."""
    source = kms_storage.put_object(
        "r/s.wav",
        AUDIO,
        content_type="audio/wav",
        server_side_encryption="aws:kms",
        kms_key_id=KMS_KEY,
    )
    moved = kms_storage.promote("r/s.wav", "r/t.wav", expected=source)
    assert moved is not None
    assert (moved.server_side_encryption, moved.kms_key_id) == ("aws:kms", KMS_KEY)
    assert moved.etag != source.etag
    assert kms_storage.head("r/s.wav") is None


def test_an_alias_cannot_be_the_key(clock: FakeTime) -> None:
    """S3 reports key ARNs, so an alias could never be checked: refused at construction."""
    with pytest.raises(ValueError, match="alias"):
        InMemoryStorage(clock=clock, sse="aws:kms", kms_key_id="alias/recordings")


def test_a_declared_sha256_is_verified_on_upload(storage: InMemoryStorage) -> None:
    """A body with the declared digest lands; another body, or a changed field, is refused."""
    digest = hashlib.sha256(AUDIO[:100]).hexdigest()
    ticket = storage.create_upload(
        key="r/s.wav", content_type="audio/wav", max_size=1000, expires_in=60, sha256=digest
    )
    assert ticket.fields["x-amz-checksum-algorithm"] == "SHA256"
    with pytest.raises(StorageError) as info:
        storage.receive_upload(ticket.fields, AUDIO[1:101])
    assert info.value.details["reason"] == "checksum"
    other = hashlib.sha256(AUDIO[1:101]).digest()
    forged = {**ticket.fields, "x-amz-checksum-sha256": base64.b64encode(other).decode()}
    with pytest.raises(StorageError) as info:
        storage.receive_upload(forged, AUDIO[1:101])
    assert info.value.details["reason"] == "checksum"
    assert storage.head("r/s.wav") is None
    stored = storage.receive_upload(ticket.fields, AUDIO[:100])
    assert stored.sha256 == digest
