"""A RecordingService over the in-memory repository and the in-memory storage."""

from __future__ import annotations

import attrs
import pytest

from helppet_recordings import (
    InMemoryRepository,
    InMemoryStorage,
    RecordingService,
    RecordingSettings,
)
from helppet_recordings.testing.clock import FakeClock

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
