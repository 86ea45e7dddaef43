"""Replayed upload tickets and non-audio uploads on S3Storage against SeaweedFS.

Uploads are real multipart POSTs to SeaweedFS with the ticket's POST policy;
SeaweedFS enforces the policy as S3 does, and accepts a replay of a ticket
that has not expired. The suite's one SeaweedFS server is shared; each test
gets its own bucket.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from helppet_recordings import (
    InMemoryRepository,
    RecordingService,
    RecordingSettings,
    S3Storage,
)
from helppet_recordings.multipart import MIN_PART_SIZE
from tests.support.replay import (
    ORIGINAL,
    SAME_SIZE,
    STATUSES,
    assert_html_is_refused,
    assert_pinned_replay_is_harmless,
    assert_pinned_replays_during_completion_are_harmless,
    assert_replay_is_harmless,
    initiate,
    uploaded,
    wav,
)
from tests.support.seaweedfs import SeaweedEndpoint, make_client
from tests.support.uploads import upload_key

pytestmark = pytest.mark.e2e


@pytest.fixture
def service(seaweed: SeaweedEndpoint, seaweed_bucket: str) -> RecordingService:
    """A service over S3Storage on a fresh SeaweedFS bucket."""
    storage = S3Storage(seaweed_bucket, client=make_client(seaweed))
    return RecordingService(
        storage=storage, repository=InMemoryRepository(), settings=RecordingSettings()
    )


@pytest.mark.parametrize("status", STATUSES)
def test_replayed_ticket_never_changes_verified_audio(
    service: RecordingService, status: str
) -> None:
    """A ticket replayed after completion leaves the verified bytes, and reconcile cleans up."""
    after_replays = assert_replay_is_harmless(service, status)
    expected = b"" if status == "purged" else ORIGINAL
    assert after_replays == [expected, expected]


@pytest.mark.parametrize("status", STATUSES)
def test_a_pinned_ticket_replayed_never_changes_verified_audio(
    service: RecordingService, status: str
) -> None:
    """A ticket naming the final key takes only the pinned bytes, which change nothing."""
    expected = b"" if status == "purged" else ORIGINAL
    assert assert_pinned_replay_is_harmless(service, status) == expected


def test_pinned_replays_during_completion_change_nothing(service: RecordingService) -> None:
    """Four threads replay the pinned ticket while completion verifies: the audio holds."""
    assert_pinned_replays_during_completion_are_harmless(service)


def test_html_page_on_an_audio_ticket_is_refused(service: RecordingService) -> None:
    """An HTML page sent as audio/wav fails completion (html_document); it stays uploading."""
    assert_html_is_refused(service)


def test_reconcile_reports_replaced_audio_and_not_multipart_listings(
    service: RecordingService, seaweed: SeaweedEndpoint, seaweed_bucket: str
) -> None:
    """On SeaweedFS: verified audio overwritten in place is reported; untouched audio is not.

    One recording's object is a real multipart object (a ``-2`` ETag), the
    case where a server's listing may show another ETag than ``head``.
    """
    client = make_client(seaweed)
    user = uuid.uuid4()
    posted = uploaded(service, user)
    multipart = initiate(service, user)
    body = wav(400.0, 440.0)  # more than one 5 MiB part at 8 kHz
    upload = client.create_multipart_upload(
        Bucket=seaweed_bucket,
        Key=upload_key(multipart),
        ContentType="audio/wav",
        ServerSideEncryption="AES256",
    )
    parts: list[Any] = []
    for number, start in enumerate((0, MIN_PART_SIZE), start=1):
        answer = client.upload_part(
            Bucket=seaweed_bucket,
            Key=upload_key(multipart),
            UploadId=upload["UploadId"],
            PartNumber=number,
            Body=body[start : start + MIN_PART_SIZE] if number == 1 else body[start:],
        )
        parts.append({"PartNumber": number, "ETag": answer["ETag"]})
    client.complete_multipart_upload(
        Bucket=seaweed_bucket,
        Key=upload_key(multipart),
        UploadId=upload["UploadId"],
        MultipartUpload={"Parts": parts},
    )
    service.complete_upload(user, multipart.recording_id, {"file_size_bytes": len(body)})
    stored = service.storage.head(multipart.s3_key)
    assert stored is not None
    assert (stored.etag or "").endswith("-2")

    assert service.reconcile().changed_objects == []
    client.put_object(
        Bucket=seaweed_bucket,
        Key=posted.s3_key,
        Body=SAME_SIZE,
        ContentType="audio/wav",
        ServerSideEncryption="AES256",
    )
    report = service.reconcile()
    assert report.changed_objects == [posted.recording_id]
    assert (report.missing_objects, report.orphan_keys) == ([], [])
