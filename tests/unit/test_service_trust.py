"""Idempotent initiate, renewed tickets, checksums, the sweeper, reconcile and purge."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import logging
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import attrs
import pytest

from helppet_recordings import (
    IdempotencyConflictError,
    InvalidStatusTransitionError,
    RecordingNotFoundError,
    RecordingService,
    RecordingStatus,
    StorageError,
    UploadVerificationError,
    ValidationError,
)
from tests.support.faults import FaultyStorage, RefusingStorage
from tests.support.uploads import upload_key
from tests.unit.conftest import Harness

USER = uuid.UUID("5f0c6c1e-0a7e-4b8e-9d5e-0c2b7b7f1a01")
OTHER = uuid.UUID("9a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d")
BODY = b"\x00\x00\x00\x18ftypM4A " + b"b" * 4000
MD5_HEX = hashlib.md5(BODY).hexdigest()  # noqa: S324 - S3's ETag is an MD5
MD5_B64 = base64.b64encode(hashlib.md5(BODY).digest()).decode()  # noqa: S324


def request(**overrides: Any) -> dict[str, Any]:
    """An initiate request body."""
    return {"filename": "visit.m4a", "content_type": "audio/mp4", **overrides}


def key_of(h: Harness, rid: uuid.UUID) -> str:
    """The storage key of a recording."""
    recording = h.repository.get(rid)
    assert recording is not None
    return recording.s3_key


# --- idempotent initiate -----------------------------------------------------------------


def test_retried_initiate_returns_the_same_recording_with_a_fresh_ticket(harness: Harness) -> None:
    """The same idempotency key and request give the same recording and key, a new deadline."""
    first = harness.service.initiate_upload(USER, request(idempotency_key="visit-42"))
    deadline = harness.repository.get(first.recording_id)
    harness.clock.advance(minutes=20)
    again = harness.service.initiate_upload(USER, request(idempotency_key="visit-42"))
    assert (again.recording_id, again.s3_key) == (first.recording_id, first.s3_key)
    assert again.upload_fields["key"] == first.upload_fields["key"]
    renewed = harness.repository.get(first.recording_id)
    assert deadline is not None
    assert renewed is not None
    assert deadline.upload_expires_at is not None
    assert renewed.upload_expires_at == deadline.upload_expires_at + dt.timedelta(minutes=20)
    assert harness.service.list_recordings(USER).total == 1


def test_idempotency_key_reused_for_another_request_conflicts(harness: Harness) -> None:
    """A key used for one request cannot create or return a different one."""
    harness.service.initiate_upload(USER, request(idempotency_key="k1"))
    with pytest.raises(IdempotencyConflictError) as info:
        harness.service.initiate_upload(USER, request(idempotency_key="k1", filename="other.m4a"))
    assert info.value.http_status == 409
    assert harness.service.list_recordings(USER).total == 1


def test_idempotency_keys_belong_to_their_user(harness: Harness) -> None:
    """Another user's identical key is an independent recording."""
    mine = harness.service.initiate_upload(USER, request(idempotency_key="k"))
    theirs = harness.service.initiate_upload(OTHER, request(idempotency_key="k"))
    assert mine.recording_id != theirs.recording_id


def test_retried_initiate_after_completion_is_refused(harness: Harness) -> None:
    """Once uploaded, a retried initiate gets no ticket that could overwrite the audio."""
    first = harness.service.initiate_upload(USER, request(idempotency_key="k"))
    harness.put(upload_key(first), BODY)
    harness.service.complete_upload(USER, first.recording_id, {"file_size_bytes": len(BODY)})
    with pytest.raises(InvalidStatusTransitionError) as info:
        harness.service.initiate_upload(USER, request(idempotency_key="k"))
    assert info.value.details["recording_id"] == str(first.recording_id)


@pytest.mark.parametrize("key", ["", "has space", "x" * 129, "semi;colon", "ü"])
def test_malformed_idempotency_keys_are_refused(harness: Harness, key: str) -> None:
    """Idempotency keys are 1 to 128 URL-safe characters."""
    with pytest.raises(ValidationError):
        harness.service.initiate_upload(USER, request(idempotency_key=key))


def test_concurrent_retries_create_one_recording(harness: Harness) -> None:
    """Sixteen simultaneous initiates with one key all answer with the same recording."""
    threads = 16
    barrier = threading.Barrier(threads)

    def attempt(_: int) -> uuid.UUID:
        barrier.wait()
        return harness.service.initiate_upload(USER, request(idempotency_key="same")).recording_id

    with ThreadPoolExecutor(threads) as pool:
        ids = set(pool.map(attempt, range(threads)))
    assert len(ids) == 1
    assert harness.service.list_recordings(USER).total == 1


# --- renewed tickets ---------------------------------------------------------------------


def test_renew_upload_gives_a_fresh_ticket_for_the_same_key(harness: Harness) -> None:
    """An expired URL is replaced: same recording and key, new signature, later deadline."""
    first = harness.service.initiate_upload(USER, request())
    harness.clock.advance(minutes=30)
    renewed = harness.service.renew_upload(USER, first.recording_id)
    assert (renewed.recording_id, renewed.s3_key) == (first.recording_id, first.s3_key)
    assert renewed.upload_fields["key"] == first.upload_fields["key"]
    row = harness.repository.get(first.recording_id)
    assert row is not None
    assert row.upload_expires_at == harness.clock.now + dt.timedelta(seconds=600 + 900)


def test_renew_upload_only_while_uploading_and_only_for_the_owner(harness: Harness) -> None:
    """Renewal is refused after completion, and another user's recording does not exist."""
    first = harness.service.initiate_upload(USER, request())
    with pytest.raises(RecordingNotFoundError):
        harness.service.renew_upload(OTHER, first.recording_id)
    harness.put(upload_key(first), BODY)
    harness.service.complete_upload(USER, first.recording_id, {"file_size_bytes": len(BODY)})
    with pytest.raises(InvalidStatusTransitionError):
        harness.service.renew_upload(USER, first.recording_id)


def test_renew_during_a_storage_outage_changes_nothing(harness: Harness) -> None:
    """If signing fails, the deadline stays where it was."""
    first = harness.service.initiate_upload(USER, request())
    before = harness.repository.get(first.recording_id)
    storage = FaultyStorage(harness.storage)
    storage.failing = {"create_upload"}
    service = RecordingService(storage, harness.repository, harness.service.settings)
    with pytest.raises(Exception, match="injected outage"):
        service.renew_upload(USER, first.recording_id)
    assert harness.repository.get(first.recording_id) == before


# --- checksums ---------------------------------------------------------------------------


@pytest.mark.parametrize("declared", [MD5_HEX, MD5_HEX.upper(), MD5_B64])
def test_matching_md5_completes_and_is_recorded(harness: Harness, declared: str) -> None:
    """An MD5 in hex or base64 that matches the ETag completes; the recording keeps it."""
    ticket = harness.service.initiate_upload(USER, request(content_md5=declared))
    harness.put(upload_key(ticket), BODY)
    done = harness.service.complete_upload(
        USER, ticket.recording_id, {"file_size_bytes": len(BODY)}
    )
    assert done.status is RecordingStatus.UPLOADED
    row = harness.repository.get(ticket.recording_id)
    assert row is not None
    assert row.content_md5 == MD5_HEX
    private = {"idempotency_key", "content_md5", "content_sha256", "deleted_by_user_id", "s3_url"}
    assert not private & set(done.model_dump())


def test_mismatching_md5_keeps_the_recording_uploading(harness: Harness) -> None:
    """A body that is not what the client hashed does not complete."""
    ticket = harness.service.initiate_upload(USER, request())
    harness.put(upload_key(ticket), BODY[:-1] + b"X")
    with pytest.raises(UploadVerificationError) as info:
        harness.service.complete_upload(
            USER, ticket.recording_id, {"file_size_bytes": len(BODY), "content_md5": MD5_B64}
        )
    assert info.value.details["checksum"] == "content_md5"
    assert harness.service.get_recording(USER, ticket.recording_id).status is (
        RecordingStatus.UPLOADING
    )


@pytest.mark.parametrize(
    ("field", "declared"),
    [
        ("content_md5", hashlib.md5(b"another body").hexdigest()),  # noqa: S324 - S3's ETag
        ("content_sha256", hashlib.sha256(b"another body").hexdigest()),
    ],
    ids=["md5", "sha256"],
)
def test_a_checksum_mismatch_names_its_reason(harness: Harness, field: str, declared: str) -> None:
    """A wrong checksum at completion is refused with details.reason checksum and its details."""
    ticket = harness.service.initiate_upload(USER, request())
    harness.put(upload_key(ticket), BODY)
    with pytest.raises(UploadVerificationError) as info:
        harness.service.complete_upload(
            USER, ticket.recording_id, {"file_size_bytes": len(BODY), field: declared}
        )
    details = info.value.details
    assert details["reason"] == "checksum"
    assert details["checksum"] == field
    assert details["expected_checksum"] == declared
    assert details["stored_checksum"] not in (None, declared)


def test_a_stored_content_type_mismatch_names_its_reason(harness: Harness) -> None:
    """An object stored as audio/mpeg for a WAV recording is refused with reason content_type."""
    ticket = harness.service.initiate_upload(
        USER, {"filename": "visit.wav", "content_type": "audio/wav"}
    )
    harness.put(upload_key(ticket), BODY, "audio/mpeg")
    with pytest.raises(UploadVerificationError) as info:
        harness.service.complete_upload(USER, ticket.recording_id, {"file_size_bytes": len(BODY)})
    details = info.value.details
    assert details["reason"] == "content_type"
    assert details["expected_content_type"] == "audio/wav"
    assert details["stored_content_type"] == "audio/mpeg"
    assert harness.service.get_recording(USER, ticket.recording_id).status is (
        RecordingStatus.UPLOADING
    )


def test_checksums_given_twice_must_agree(harness: Harness) -> None:
    """A checksum at complete that contradicts the one at initiate is a validation error."""
    ticket = harness.service.initiate_upload(USER, request(content_md5=MD5_HEX))
    harness.put(upload_key(ticket), BODY)
    with pytest.raises(ValidationError):
        harness.service.complete_upload(
            USER, ticket.recording_id, {"file_size_bytes": len(BODY), "content_md5": "0" * 32}
        )


@pytest.mark.parametrize(
    "bad",
    [
        "abc",
        "g" * 32,
        "=" * 24,
        MD5_HEX + "00",
        MD5_HEX[:14] + " \t\n " + MD5_HEX[14:28],  # 32 characters, 28 of them hex
        "\u0661" * 32,  # Arabic-Indic digits
    ],
)
def test_malformed_checksums_are_refused(harness: Harness, bad: str) -> None:
    """A checksum that is not a digest of the right size is VALIDATION_ERROR."""
    with pytest.raises(ValidationError):
        harness.service.initiate_upload(USER, request(content_md5=bad))


def test_a_sha256_with_whitespace_inside_is_refused_at_initiate(harness: Harness) -> None:
    """64 characters with tabs among them are no SHA-256: VALIDATION_ERROR, not a shorter one."""
    digest = hashlib.sha256(BODY).hexdigest()
    with pytest.raises(ValidationError) as refused:
        harness.service.initiate_upload(
            USER, request(content_sha256=digest[:28] + "\t" * 8 + digest[28:56])
        )
    assert [e["field"] for e in refused.value.details["errors"]] == ["content_sha256"]


# --- the sweeper -------------------------------------------------------------------------


def test_concurrent_sweepers_do_no_double_work(harness: Harness) -> None:
    """Four sweepers at once fail each stale upload once and ask storage once per recording."""
    storage = FaultyStorage(harness.storage)
    service = RecordingService(
        storage,
        harness.repository,
        harness.service.settings,
        clock=harness.clock,
    )
    ids = [service.initiate_upload(USER, request()).recording_id for _ in range(30)]
    harness.clock.advance(hours=1)
    barrier = threading.Barrier(4)

    def sweep(_: int) -> int:
        barrier.wait()
        return service.expire_stale_uploads(batch_size=3)

    with ThreadPoolExecutor(4) as pool:
        failed = sum(pool.map(sweep, range(4)))
    assert failed == 30
    # each recording checked by one sweeper: its staging key, then its final key
    assert storage.calls["head"] == 2 * 30
    assert {service.get_recording(USER, rid).status for rid in ids} == {RecordingStatus.FAILED}


def test_sweeper_outage_leaves_recordings_uploading_until_the_lease_ends(harness: Harness) -> None:
    """A storage outage mid-sweep changes nothing; once the lease ends the next sweep settles."""
    storage = FaultyStorage(harness.storage)
    service = RecordingService(
        storage,
        harness.repository,
        harness.service.settings,
        clock=harness.clock,
    )
    rid = service.initiate_upload(USER, request()).recording_id
    harness.clock.advance(hours=1)
    storage.failing = {"head"}
    with pytest.raises(Exception, match="injected outage"):
        service.expire_stale_uploads(lease_seconds=60)
    assert service.get_recording(USER, rid).status is RecordingStatus.UPLOADING
    storage.failing = set()
    assert service.expire_stale_uploads() == 0  # still leased
    harness.clock.advance(seconds=61)
    assert service.expire_stale_uploads() == 1


def _on(harness: Harness, storage: FaultyStorage) -> RecordingService:
    return RecordingService(
        storage, harness.repository, harness.service.settings, clock=harness.clock
    )


def test_a_storage_refusal_in_the_sweep_fails_the_upload_but_deletes_nothing(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """403 on reading a stale upload: it fails (the deadline passed), its bytes are kept."""
    storage = RefusingStorage(harness.storage)
    service = _on(harness, storage)
    arrived = service.initiate_upload(USER, request())
    harness.put(upload_key(arrived), BODY)
    never = service.initiate_upload(USER, request()).recording_id
    harness.clock.advance(hours=1)
    storage.failing = {"read_range"}
    with caplog.at_level(logging.WARNING, logger="helppet_recordings.maintenance"):
        assert service.expire_stale_uploads(lease_seconds=60) == 2
    assert service.get_recording(USER, never).status is RecordingStatus.FAILED
    refused = service.get_recording(USER, arrived.recording_id)
    assert refused.status is RecordingStatus.FAILED
    assert refused.processing_error is not None
    assert "storage refused to read the upload (AccessDenied)" in refused.processing_error
    assert harness.storage.head(upload_key(arrived)) is not None
    assert "AccessDenied" in caplog.text
    assert storage.calls["delete"] == 0


def test_a_sweep_not_allowed_to_list_multipart_uploads_still_settles_and_counts(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """The orphan-abort step refused (a POST-only role) is logged; the stale uploads are counted."""
    storage = RefusingStorage(harness.storage)
    service = _on(harness, storage)
    rid = service.initiate_upload(USER, request()).recording_id
    harness.clock.advance(hours=1)
    storage.failing = {"list_multipart_uploads"}
    with caplog.at_level(logging.WARNING, logger="helppet_recordings.maintenance"):
        assert service.expire_stale_uploads() == 1
    assert service.get_recording(USER, rid).status is RecordingStatus.FAILED
    assert "s3:ListBucketMultipartUploads" in caplog.text
    assert storage.calls["list_multipart_uploads"] == 1


def test_a_late_completion_storage_refuses_to_read_keeps_the_upload(harness: Harness) -> None:
    """After the deadline, a 403 while verifying is raised as it is: no failure, no deletion."""
    storage = RefusingStorage(harness.storage)
    service = _on(harness, storage)
    ticket = service.initiate_upload(USER, request())
    harness.put(upload_key(ticket), BODY)
    harness.clock.advance(hours=1)
    storage.failing = {"read_range"}
    with pytest.raises(StorageError):
        service.complete_upload(USER, ticket.recording_id, {"file_size_bytes": len(BODY)})
    assert service.get_recording(USER, ticket.recording_id).status is RecordingStatus.UPLOADING
    assert harness.storage.head(upload_key(ticket)) is not None
    storage.failing = set()
    done = service.complete_upload(USER, ticket.recording_id, {"file_size_bytes": len(BODY)})
    assert done.status is RecordingStatus.UPLOADED


# --- reconcile and purge -----------------------------------------------------------------


def test_reconcile_finds_orphans_and_missing_objects(harness: Harness) -> None:
    """Objects nobody owns and verified recordings without objects are reported; dry run first."""
    done = harness.service.initiate_upload(USER, request())
    harness.put(upload_key(done), BODY)
    harness.service.complete_upload(USER, done.recording_id, {"file_size_bytes": len(BODY)})
    lost = harness.service.initiate_upload(USER, request())
    harness.put(upload_key(lost), BODY)
    harness.service.complete_upload(USER, lost.recording_id, {"file_size_bytes": len(BODY)})
    harness.storage.delete(lost.s3_key)
    pending = harness.service.initiate_upload(USER, request())
    deleted = harness.service.initiate_upload(USER, request())
    harness.put(upload_key(deleted), BODY)
    harness.service.delete_recording(USER, deleted.recording_id)
    orphan = f"recordings/{USER}/unassigned/20200101_000000_0123456789abcdef.m4a"
    harness.put(orphan, b"stray")
    harness.put("elsewhere/not-ours.m4a", b"outside the prefix")

    report = harness.service.reconcile()
    assert report.dry_run is True
    assert report.orphan_keys == [orphan]
    assert report.missing_objects == [lost.recording_id]
    assert report.deleted_orphans == 0
    assert (report.scanned_objects, report.scanned_recordings) == (3, 4)
    assert harness.storage.head(orphan) is not None
    assert harness.storage.head(pending.s3_key) is None

    young = harness.service.reconcile(delete_orphans=True, now=dt.datetime.now(dt.UTC))
    assert young.deleted_orphans == 0  # too recent to delete
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)
    cleaned = harness.service.reconcile(delete_orphans=True, now=later)
    assert (cleaned.deleted_orphans, cleaned.dry_run) == (1, False)
    assert harness.storage.head(orphan) is None
    assert harness.storage.head(upload_key(deleted)) is not None
    assert harness.storage.head("elsewhere/not-ours.m4a") is not None


def _completed(harness: Harness) -> Any:
    ticket = harness.service.initiate_upload(USER, request())
    harness.put(upload_key(ticket), BODY)
    harness.service.complete_upload(USER, ticket.recording_id, {"file_size_bytes": len(BODY)})
    return ticket


def test_reconcile_reports_audio_replaced_after_verification(harness: Harness) -> None:
    """A verified object overwritten (same size, or another size) is reported, never fixed.

    An untouched recording is not, nor a deleted one whose object changed: a
    deleted recording keeps no audio anyone reads.
    """
    same_size, grown, untouched, deleted = (_completed(harness) for _ in range(4))
    harness.put(same_size.s3_key, BODY[:-1] + b"X")
    harness.put(grown.s3_key, BODY + b"more")
    harness.put(deleted.s3_key, BODY + b"more")
    harness.service.delete_recording(USER, deleted.recording_id)

    report = harness.service.reconcile(delete_orphans=True)
    assert sorted(report.changed_objects) == sorted([same_size.recording_id, grown.recording_id])
    assert untouched.recording_id not in report.changed_objects
    assert (report.missing_objects, report.orphan_keys, report.deleted_orphans) == ([], [], 0)
    stored = harness.storage.head(grown.s3_key)
    assert stored is not None
    assert stored.size == len(BODY) + 4  # left as it is: a person decides


class _ListsOtherETags(FaultyStorage):
    """Lists every object with an ETag unlike the one ``head`` reports.

    As a server may list a multipart object; ``head`` and reads are the real ones.
    """

    def iter_objects(self, prefix: str) -> Any:
        self.calls["iter_objects"] += 1
        for stored in self._inner.iter_objects(prefix):
            yield attrs.evolve(stored, etag=f"{stored.etag}-2")


def test_reconcile_judges_a_replacement_by_head_not_by_the_listing(harness: Harness) -> None:
    """A listed ETag unlike the verified one is only a hint: head says the object is the same."""
    ticket = _completed(harness)
    storage = _ListsOtherETags(harness.storage)
    report = _on(harness, storage).reconcile()
    assert report.changed_objects == []
    assert storage.calls["head"] == 1  # the hint was checked, once
    harness.put(ticket.s3_key, BODY[:-1] + b"X")
    assert _on(harness, storage).reconcile().changed_objects == [ticket.recording_id]


def test_purge_removes_audio_and_scrubs_after_retention(harness: Harness) -> None:
    """Soft-deleted recordings keep their audio for the retention period, then lose it once."""
    ticket = harness.service.initiate_upload(USER, request(filename="Bello visit.m4a"))
    harness.put(upload_key(ticket), BODY)
    harness.service.complete_upload(
        USER, ticket.recording_id, {"file_size_bytes": len(BODY), "recording_metadata": {"a": 1}}
    )
    harness.service.start_processing(ticket.recording_id)
    harness.service.record_transcript(ticket.recording_id, text="private words")
    harness.service.delete_recording(USER, ticket.recording_id)
    assert harness.service.purge_deleted() == 0
    harness.clock.advance(days=31)
    assert harness.service.purge_deleted() == 1
    assert harness.storage.head(ticket.s3_key) is None
    row = harness.repository.get(ticket.recording_id)
    assert row is not None
    assert (row.original_filename, row.transcript_text, row.recording_metadata) == (
        None,
        None,
        None,
    )
    assert row.purged_at == harness.clock.now
    assert (row.id, row.s3_key, row.status) == (
        ticket.recording_id,
        ticket.s3_key,
        RecordingStatus.TRANSCRIBED,
    )
    assert harness.service.purge_deleted() == 0
    assert harness.service.purge_deleted(retention_days=0) == 0
    with pytest.raises(ValidationError):
        harness.service.purge_deleted(retention_days=-1)
