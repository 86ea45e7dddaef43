"""S3Storage and the whole service against SeaweedFS, which enforces the POST policy.

Uploads are real multipart HTTP POSTs, as the phone sends them.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

import httpx
import pytest

from helppet_recordings import (
    InMemoryRepository,
    RecordingService,
    RecordingSettings,
    RecordingStatus,
    S3Storage,
    UploadNotFoundError,
)
from helppet_recordings.ports import RecordingStorage
from helppet_recordings.testing.storage_contract import (
    AUDIO,
    HttpStorageContract,
    PromoteContract,
    PutObject,
)
from tests.support.seaweedfs import SeaweedEndpoint, make_client

pytestmark = pytest.mark.e2e


def _storage(seaweed: SeaweedEndpoint, bucket: str) -> S3Storage:
    return S3Storage(bucket, client=make_client(seaweed))


class TestS3StorageOnSeaweedFS(HttpStorageContract, PromoteContract):
    signature_field = "x-amz-signature"

    @pytest.fixture
    def storage(self, seaweed: SeaweedEndpoint, seaweed_bucket: str) -> RecordingStorage:
        """S3Storage on a fresh SeaweedFS bucket."""
        return _storage(seaweed, seaweed_bucket)

    @pytest.fixture
    def put_object(self, storage: RecordingStorage) -> PutObject:
        """Store an object through a real POST upload with a fresh ticket."""

        def put(key: str, body: bytes, content_type: str) -> None:
            ticket = storage.create_upload(
                key=key, content_type=content_type, max_size=len(body), expires_in=60
            )
            response = self.post(ticket, body)
            assert response.is_success, response.text

        return put

    def test_stored_object_is_encrypted(self, storage: RecordingStorage) -> None:
        """HEAD after a valid upload reports AES256 server-side encryption."""
        ticket = self.ticket(storage, "sse.m4a")
        assert self.post(ticket, AUDIO).is_success
        stored = storage.head(ticket.key)
        assert stored is not None
        assert stored.server_side_encryption == "AES256"

    def test_upload_without_encryption_field_is_refused(self, storage: RecordingStorage) -> None:
        """Dropping x-amz-server-side-encryption breaks the policy."""
        ticket = self.ticket(storage, "nosse.m4a")
        fields = {k: v for k, v in ticket.fields.items() if k != "x-amz-server-side-encryption"}
        self.assert_refused(self.post(ticket, AUDIO, fields=fields), storage, ticket.key)

    def test_ticket_cannot_write_to_another_bucket(
        self, storage: RecordingStorage, seaweed: SeaweedEndpoint, seaweed_bucket: str
    ) -> None:
        """The policy pins the bucket: the same fields posted to another bucket are refused."""
        other_bucket = f"{seaweed_bucket}-other"
        client = make_client(seaweed)
        client.create_bucket(Bucket=other_bucket)
        ticket = self.ticket(storage, "bucket.m4a")
        other_url = ticket.url.rstrip("/").rsplit("/", 1)[0] + f"/{other_bucket}"
        response = self.post(ticket, AUDIO, url=other_url)
        assert 400 <= response.status_code < 500
        assert client.list_objects_v2(Bucket=other_bucket).get("KeyCount", 0) == 0

    def test_ticket_replayed_during_promote_is_not_copied(self, storage: RecordingStorage) -> None:
        """A replay landing between promote's HEAD and its copy fails the copy's condition (412)."""
        assert isinstance(storage, S3Storage)
        ticket = self.ticket(storage, "staging/race.m4a")
        assert self.post(ticket, AUDIO).is_success
        expected = storage.head(ticket.key)
        assert expected is not None
        replayed = AUDIO[::-1]
        statuses: list[int] = []

        def replay(**_: Any) -> None:
            storage.client.meta.events.unregister("before-call.s3.CopyObject", replay)
            assert self.post(ticket, replayed).is_success

        def record(http_response: Any, **_: Any) -> None:
            statuses.append(http_response.status_code)

        storage.client.meta.events.register("before-call.s3.CopyObject", replay)
        storage.client.meta.events.register("after-call.s3.CopyObject", record)
        target = self.key("final/race.m4a")
        assert storage.promote(ticket.key, target, expected=expected) is None
        assert statuses == [412]
        assert storage.head(target) is None
        assert storage.read_range(ticket.key, offset=0, length=len(AUDIO)) == replayed


def test_phone_flow_end_to_end(seaweed: SeaweedEndpoint, seaweed_bucket: str) -> None:
    """Initiate, POST the audio as the phone does, complete, download the same bytes."""
    settings = RecordingSettings(s3_bucket_name=seaweed_bucket, max_file_size=1_000_000)
    service = RecordingService(
        storage=_storage(seaweed, seaweed_bucket),
        repository=InMemoryRepository(),
        settings=settings,
    )
    user = uuid.uuid4()
    ticket = service.initiate_upload(
        user,
        {
            "filename": "visit.m4a",
            "content_type": "Audio/MP4; codecs=mp4a.40.2",
            "visit_id": str(uuid.uuid4()),
        },
    )
    assert ticket.upload_fields["Content-Type"] == "audio/mp4"

    with pytest.raises(UploadNotFoundError):
        service.complete_upload(user, ticket.recording_id, {"file_size_bytes": len(AUDIO)})

    response = httpx.post(
        ticket.upload_url,
        data=ticket.upload_fields,
        files={"file": ("visit.m4a", AUDIO, "audio/mp4")},
        timeout=30,
    )
    assert response.status_code == 204, response.text

    done = service.complete_upload(
        user, ticket.recording_id, {"file_size_bytes": len(AUDIO), "duration_seconds": 2.5}
    )
    assert done.status is RecordingStatus.UPLOADED
    assert done.file_size_bytes == len(AUDIO)

    download = service.get_download_url(user, ticket.recording_id)
    fetched = httpx.get(download.download_url, timeout=30)
    assert fetched.status_code == 200
    assert hashlib.sha256(fetched.content).digest() == hashlib.sha256(AUDIO).digest()
    assert fetched.headers["content-type"] == "audio/mp4"
