"""InMemoryStorage runs the storage contract and enforces its tickets' policy itself."""

from __future__ import annotations

import pytest

from helppet_recordings import InMemoryStorage, StorageError
from helppet_recordings.ports import RecordingStorage
from helppet_recordings.testing.storage_contract import (
    AUDIO,
    PromoteContract,
    PutObject,
    StorageContract,
)


class TestInMemoryStorageContract(StorageContract, PromoteContract):
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
