"""A RecordingService over the in-memory repository and S3Storage on moto."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import attrs
import pytest

from helppet_recordings import InMemoryRepository, RecordingService, RecordingSettings, S3Storage
from helppet_recordings.testing.clock import FakeClock
from tests.support.moto_s3 import BUCKET, moto_bucket

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


@attrs.define
class Harness:
    """The service under test with its real backends and a movable clock."""

    service: RecordingService
    repository: InMemoryRepository
    storage: S3Storage
    client: S3Client
    clock: FakeClock

    def put(
        self, key: str, body: bytes, content_type: str = "audio/mp4", *, sse: bool = True
    ) -> None:
        """Store an object as the phone's upload would."""
        if sse:
            self.client.put_object(
                Bucket=BUCKET,
                Key=key,
                Body=body,
                ContentType=content_type,
                ServerSideEncryption="AES256",
            )
        else:
            self.client.put_object(Bucket=BUCKET, Key=key, Body=body, ContentType=content_type)


@pytest.fixture
def harness() -> Iterator[Harness]:
    """A fresh service on an empty repository and bucket."""
    with moto_bucket() as client:
        clock = FakeClock()
        repository = InMemoryRepository()
        storage = S3Storage(BUCKET, client=client)
        settings = RecordingSettings(max_file_size=1_000_000, s3_presigned_url_expiration=600)
        service = RecordingService(storage, repository, settings, clock=clock)
        yield Harness(service, repository, storage, client, clock)
