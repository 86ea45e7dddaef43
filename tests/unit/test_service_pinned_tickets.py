"""Tickets that pin the declared SHA-256 name the final key: no staging key, no copy."""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from typing import Any

import pytest

from helppet_recordings import (
    IdempotencyConflictError,
    InMemoryRepository,
    InMemoryStorage,
    RecordingService,
    RecordingSettings,
    RecordingStatus,
    StorageError,
    UploadKindError,
)
from helppet_recordings.schemas import InitiateUploadResponse
from tests.unit.conftest import BUCKET, Harness

USER = uuid.UUID("5f0c6c1e-0a7e-4b8e-9d5e-0c2b7b7f1a01")
BODY = b"\x00\x00\x00\x18ftypM4A " + b"b" * 4000
SHA256 = hashlib.sha256(BODY).hexdigest()
OTHER = b"\x00\x00\x00\x18ftypM4A " + b"c" * 4000


def request(**overrides: Any) -> dict[str, Any]:
    """An initiate request that declares the file's SHA-256."""
    return {
        "filename": "visit.m4a",
        "content_type": "audio/mp4",
        "content_sha256": SHA256,
        **overrides,
    }


def post(h: Harness, ticket: InitiateUploadResponse, body: bytes) -> None:
    """POST ``body`` with the ticket's fields, as the phone does (storage enforces the policy)."""
    h.storage.receive_upload(ticket.upload_fields, body)


def complete(h: Harness, ticket: InitiateUploadResponse, body: bytes = BODY) -> Any:
    """Complete the upload of ``body``."""
    return h.service.complete_upload(
        USER, ticket.recording_id, {"file_size_bytes": len(body), "content_sha256": SHA256}
    )


def keys(h: Harness) -> list[str]:
    """Every key storage holds."""
    return [stored.key for stored in h.storage.iter_objects("")]


def test_a_declared_sha256_gets_a_ticket_for_the_final_key_that_pins_it(harness: Harness) -> None:
    """The ticket names ``s3_key`` and carries the checksum fields S3 verifies."""
    ticket = harness.service.initiate_upload(USER, request())
    assert ticket.upload_fields["key"] == ticket.s3_key
    assert ticket.upload_fields["x-amz-checksum-algorithm"] == "SHA256"
    assert "x-amz-checksum-sha256" in ticket.upload_fields
    recording = harness.repository.get(ticket.recording_id)
    assert recording is not None
    assert recording.uploads_in_place
    assert recording.staging_key is None


def test_without_a_declared_sha256_the_ticket_names_a_staging_key(harness: Harness) -> None:
    """No checksum, no pin: the upload goes through a staging key as before."""
    ticket = harness.service.initiate_upload(USER, request(content_sha256=None))
    assert ticket.upload_fields["key"] != ticket.s3_key
    assert "x-amz-checksum-sha256" not in ticket.upload_fields


def test_kms_storage_keeps_staging_keys_even_with_a_sha256() -> None:
    """SSE-KMS ETags change on every write, so pinned tickets do not name the final key."""
    storage = InMemoryStorage(BUCKET, sse="aws:kms")
    service = RecordingService(storage, InMemoryRepository(), RecordingSettings())
    ticket = service.initiate_upload(USER, request())
    assert ticket.upload_fields["key"] != ticket.s3_key


def test_completion_verifies_in_place_without_a_copy(harness: Harness) -> None:
    """The object stays where it was written; the checksum storage enforced counts as verified."""
    ticket = harness.service.initiate_upload(USER, request())
    post(harness, ticket, BODY)
    done = complete(harness, ticket)
    assert done.status is RecordingStatus.UPLOADED
    assert keys(harness) == [ticket.s3_key]
    recording = harness.repository.get(ticket.recording_id)
    assert recording is not None
    assert recording.checksum_status == "verified"
    assert recording.verified_etag == hashlib.md5(BODY).hexdigest()  # noqa: S324 - an ETag


def test_the_sweeper_promotes_an_in_place_upload_whose_completion_never_came(
    harness: Harness,
) -> None:
    """Past the deadline, bytes at the final key are verified where they are."""
    ticket = harness.service.initiate_upload(USER, request())
    post(harness, ticket, BODY)
    harness.clock.advance(hours=2)
    assert harness.service.expire_stale_uploads() == 0
    recording = harness.repository.get(ticket.recording_id)
    assert recording is not None
    assert recording.status is RecordingStatus.UPLOADED
    assert recording.checksum_status == "verified"


def test_a_replayed_ticket_cannot_change_the_verified_audio(harness: Harness) -> None:
    """Other bytes are refused by storage; the same bytes leave the download as it was."""
    ticket = harness.service.initiate_upload(USER, request())
    post(harness, ticket, BODY)
    complete(harness, ticket)
    with pytest.raises(StorageError) as info:
        post(harness, ticket, OTHER)
    assert info.value.details["reason"] == "checksum"
    post(harness, ticket, BODY)  # a replay of the very same bytes
    url = harness.service.get_download_url(USER, ticket.recording_id).download_url
    assert harness.storage.download(url) == BODY


def test_a_renewed_ticket_names_the_same_key_and_pins_the_same_sha256(harness: Harness) -> None:
    """Renewal keeps the pin: a renewed ticket cannot write other bytes either."""
    first = harness.service.initiate_upload(USER, request())
    renewed = harness.service.renew_upload(USER, first.recording_id)
    assert renewed.upload_fields["key"] == first.s3_key
    assert (
        renewed.upload_fields["x-amz-checksum-sha256"]
        == first.upload_fields["x-amz-checksum-sha256"]
    )
    with pytest.raises(StorageError):
        post(harness, renewed, OTHER)
    post(harness, renewed, BODY)
    assert complete(harness, renewed).status is RecordingStatus.UPLOADED


def test_a_retried_initiate_may_not_declare_another_sha256(harness: Harness) -> None:
    """The same idempotency key with another checksum is another request."""
    harness.service.initiate_upload(USER, request(idempotency_key="k"))
    again = harness.service.initiate_upload(USER, request(idempotency_key="k", content_sha256=None))
    assert again.upload_fields["key"] == again.s3_key  # no checksum this time: the pin stays
    with pytest.raises(IdempotencyConflictError):
        harness.service.initiate_upload(
            USER, request(idempotency_key="k", content_sha256=hashlib.sha256(OTHER).hexdigest())
        )


def test_refused_bytes_are_removed_when_the_upload_fails(harness: Harness) -> None:
    """Pinned bytes that are not audio fail at the deadline and leave nothing at the key."""
    not_audio = b"plain text, not audio" * 10
    ticket = harness.service.initiate_upload(
        USER, request(content_sha256=hashlib.sha256(not_audio).hexdigest())
    )
    post(harness, ticket, not_audio)
    harness.clock.advance(hours=2)
    assert harness.service.expire_stale_uploads() == 1
    recording = harness.repository.get(ticket.recording_id)
    assert recording is not None
    assert recording.status is RecordingStatus.FAILED
    assert keys(harness) == []


def test_deleting_an_unfinished_in_place_upload_removes_its_bytes(harness: Harness) -> None:
    """Unverified bytes at the final key go with the deleted upload."""
    ticket = harness.service.initiate_upload(USER, request())
    post(harness, ticket, BODY)
    harness.service.delete_recording(USER, ticket.recording_id)
    assert keys(harness) == []


def test_reconcile_reports_bytes_a_replay_left_at_a_failed_recordings_key(
    harness: Harness,
) -> None:
    """Nobody reads the key of an upload that failed unverified: the bytes are an orphan."""
    ticket = harness.service.initiate_upload(USER, request())
    harness.clock.advance(hours=2)
    assert harness.service.expire_stale_uploads() == 1  # nothing arrived in time
    post(harness, ticket, BODY)  # the ticket is still valid in storage's own clock
    report = harness.service.reconcile()
    assert report.orphan_keys == [ticket.s3_key]
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=2)  # storage dates objects by real time
    harness.service.reconcile(delete_orphans=True, now=later)
    assert keys(harness) == []


def test_reconcile_reports_bytes_a_replay_left_after_a_purge(harness: Harness) -> None:
    """A purged recording reads nothing: a replay's bytes at its key are an orphan."""
    ticket = harness.service.initiate_upload(USER, request())
    post(harness, ticket, BODY)
    complete(harness, ticket)
    harness.service.delete_recording(USER, ticket.recording_id)
    harness.clock.advance(minutes=1)
    assert harness.service.purge_deleted(retention_days=0) == 1
    assert keys(harness) == []
    post(harness, ticket, BODY)
    assert harness.service.reconcile().orphan_keys == [ticket.s3_key]


def test_a_verified_recordings_object_is_not_an_orphan(harness: Harness) -> None:
    """Reconcile leaves verified in-place audio alone."""
    ticket = harness.service.initiate_upload(USER, request())
    post(harness, ticket, BODY)
    complete(harness, ticket)
    report = harness.service.reconcile()
    assert report.orphan_keys == []
    assert report.missing_objects == []


def test_a_pinned_upload_is_not_renewed_by_storage_that_no_longer_pins(harness: Harness) -> None:
    """An unpinned ticket for the final key could overwrite audio: renewal is refused instead."""
    ticket = harness.service.initiate_upload(USER, request())
    kms = InMemoryStorage(BUCKET, sse="aws:kms")  # pins_checksums is False
    service = RecordingService(kms, harness.repository, RecordingSettings(), clock=harness.clock)
    with pytest.raises(UploadKindError) as info:
        service.renew_upload(USER, ticket.recording_id)
    assert info.value.error_code == "WRONG_UPLOAD_KIND"
    assert harness.service.renew_upload(USER, ticket.recording_id).upload_fields["key"] == (
        ticket.s3_key
    )
