"""A RecordingService over the in-memory repository and the in-memory storage.

And, for the upload client's tests, a twin of the API (``api``) and retries
without sleeping (``no_stamina_waits``, which a module asks for with
``pytestmark``).
"""

from __future__ import annotations

from collections.abc import Iterator

import attrs
import pytest
import stamina

from helppet_recordings import (
    InMemoryRepository,
    InMemoryStorage,
    RecordingService,
    RecordingSettings,
)
from helppet_recordings.testing.clock import FakeClock
from tests.support.fake_recordings_api import FakeRecordingsApi

BUCKET = "helppet-audio-recordings"


@attrs.define
class Harness:
    """The service under test with its real backends and a movable clock."""

    service: RecordingService
    repository: InMemoryRepository
    storage: InMemoryStorage
    clock: FakeClock

    def put(
        self, key: str, body: bytes, content_type: str = "audio/mp4", *, sse: bool = True
    ) -> None:
        """Store an object as the phone's upload would."""
        self.storage.put_object(
            key, body, content_type=content_type, server_side_encryption="AES256" if sse else None
        )


@pytest.fixture
def harness() -> Harness:
    """A fresh service on an empty repository and storage."""
    clock = FakeClock()
    repository = InMemoryRepository()
    storage = InMemoryStorage(BUCKET)
    settings = RecordingSettings(max_file_size=1_000_000, s3_presigned_url_expiration=600)
    service = RecordingService(storage, repository, settings, clock=clock)
    return Harness(service, repository, storage, clock)


@pytest.fixture
def no_stamina_waits() -> Iterator[None]:
    """Stamina retries without sleeping, six attempts at most."""
    with stamina.set_testing(True, attempts=6, cap=True):
        yield


@pytest.fixture
def api() -> FakeRecordingsApi:
    """A fresh twin of the API and its storage."""
    return FakeRecordingsApi()
