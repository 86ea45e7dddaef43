"""RecordingService behaviour on the in-memory repository and the in-memory storage."""

from __future__ import annotations

import datetime as dt
import uuid
import zoneinfo
from collections.abc import Callable
from typing import Any

import pytest

from helppet_recordings import (
    FileTooLargeError,
    InitiateUploadRequest,
    InMemoryRepository,
    InMemoryStorage,
    InvalidStatusTransitionError,
    PermissionDeniedError,
    RecordingError,
    RecordingNotFoundError,
    RecordingService,
    RecordingStatus,
    StoredObject,
    UnsupportedContentTypeError,
    UploadNotFoundError,
    UploadSizeMismatchError,
    UploadTicket,
    UploadTimeoutError,
    UploadVerificationError,
    ValidationError,
)
from helppet_recordings.keys import parse_key
from helppet_recordings.models import Recording
from tests.support.uploads import upload_key
from tests.unit.conftest import BUCKET, Harness

USER = uuid.UUID("5f0c6c1e-0a7e-4b8e-9d5e-0c2b7b7f1a01")
OTHER = uuid.UUID("9a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d")
BODY = b"\x00\x00\x00\x18ftypM4A " + b"a" * 5000


def initiate(h: Harness, user: uuid.UUID = USER, **overrides: Any) -> uuid.UUID:
    """Initiate an upload and return the recording id."""
    request = {"filename": "visit.m4a", "content_type": "audio/m4a", **overrides}
    return h.service.initiate_upload(user, request).recording_id


def uploaded(h: Harness, user: uuid.UUID = USER, **overrides: Any) -> uuid.UUID:
    """A recording whose upload is complete and verified."""
    rid = initiate(h, user, **overrides)
    recording = h.repository.get(rid)
    assert recording is not None
    h.put(upload_key(recording), BODY, recording.mime_type or "")
    h.service.complete_upload(user, rid, {"file_size_bytes": len(BODY)})
    return rid


# --- initiate ----------------------------------------------------------------------------


def test_initiate_returns_the_design_shape_and_creates_an_uploading_row(harness: Harness) -> None:
    """The response has exactly the design's fields and the row is uploading with a deadline."""
    appointment = uuid.uuid4()
    response = harness.service.initiate_upload(
        USER,
        {
            "appointment_id": str(appointment),
            "filename": "recording_20241219_143022.m4a",
            "content_type": "audio/m4a",
            "estimated_duration_seconds": 120.5,
        },
    )
    body = response.model_dump(mode="json")
    assert set(body) == {
        "recording_id",
        "upload_url",
        "upload_fields",
        "s3_key",
        "bucket",
        "expires_in",
        "max_file_size",
    }
    assert body["expires_in"] == 600
    assert body["max_file_size"] == 1_000_000
    # the ticket names a staging key; the verified audio will live at s3_key
    assert body["upload_fields"]["key"].startswith(f"recordings/staging/{USER}/")
    assert body["upload_fields"]["key"] != body["s3_key"]
    assert body["upload_fields"]["Content-Type"] == "audio/m4a"
    parts = parse_key(response.s3_key, prefix="recordings/")
    assert parts is not None
    assert (parts.user_id, parts.appointment_id, parts.extension) == (USER, appointment, "m4a")
    assert "recording_20241219" not in response.s3_key

    row = harness.repository.get(response.recording_id)
    assert row is not None
    assert row.status is RecordingStatus.UPLOADING
    assert row.original_filename == "recording_20241219_143022.m4a"
    assert row.filename == response.s3_key.rsplit("/", 1)[-1]
    assert row.mime_type == "audio/m4a"
    assert row.s3_url == f"memory://{response.bucket}/{response.s3_key}"
    assert row.upload_expires_at == harness.clock.now + dt.timedelta(seconds=600 + 900)


def test_initiate_accepts_the_pydantic_model(harness: Harness) -> None:
    """A request may be the model itself."""
    request = InitiateUploadRequest(filename="a.wav", content_type="audio/wav")
    response = harness.service.initiate_upload(str(USER), request)
    assert response.s3_key.endswith(".wav")


def test_content_type_with_parameters_and_case_is_normalized(harness: Harness) -> None:
    """'Audio/MP4; codecs=...' names audio/mp4 and is signed as the bare type."""
    response = harness.service.initiate_upload(
        USER, {"filename": "a.m4a", "content_type": "Audio/MP4; codecs=mp4a.40.2"}
    )
    assert response.upload_fields["Content-Type"] == "audio/mp4"


@pytest.mark.parametrize(
    ("request_body", "error"),
    [
        ({"filename": "a.m4a", "content_type": "video/mp4"}, UnsupportedContentTypeError),
        ({"filename": "a.mp3", "content_type": "audio/mp4"}, UnsupportedContentTypeError),
        (
            {"filename": "a.m4a", "content_type": "text/html; audio/mp4"},
            UnsupportedContentTypeError,
        ),
        ({"filename": "../../etc/passwd.m4a", "content_type": "audio/mp4"}, ValidationError),
        ({"filename": "a\x00.m4a", "content_type": "audio/mp4"}, ValidationError),
        ({"filename": "x\u202egpj.m4a", "content_type": "audio/mp4"}, ValidationError),
        ({"filename": "a" * 256 + ".m4a", "content_type": "audio/mp4"}, ValidationError),
        ({"filename": "", "content_type": "audio/mp4"}, ValidationError),
        ({"content_type": "audio/mp4"}, ValidationError),
        (
            {"filename": "a.m4a", "content_type": "audio/mp4", "visit_id": "not-a-uuid"},
            ValidationError,
        ),
        (
            {
                "filename": "a.m4a",
                "content_type": "audio/mp4",
                "appointment_id": str(uuid.UUID(int=0)),
            },
            ValidationError,
        ),
        (
            {"filename": "a.m4a", "content_type": "audio/mp4", "recording_type": "movie"},
            ValidationError,
        ),
        (
            {"filename": "a.m4a", "content_type": "audio/mp4", "estimated_duration_seconds": -1},
            ValidationError,
        ),
        (
            {"filename": "a.m4a", "content_type": "audio/mp4", "estimated_duration_seconds": "12"},
            ValidationError,
        ),
        ({"filename": 12, "content_type": "audio/mp4"}, ValidationError),
    ],
)
def test_bad_initiate_requests_are_refused_and_create_nothing(
    harness: Harness, request_body: dict[str, Any], error: type[RecordingError]
) -> None:
    """Each bad request raises its contract error, with details, and no row is written."""
    with pytest.raises(error) as info:
        harness.service.initiate_upload(USER, request_body)
    assert type(info.value) is error
    assert info.value.details
    assert harness.service.list_recordings(USER).total == 0


def test_validation_errors_name_every_field(harness: Harness) -> None:
    """A mapping that does not validate lists each field's problem, without echoing input."""
    with pytest.raises(ValidationError) as info:
        harness.service.initiate_upload(USER, {"filename": "x" * 5000, "content_type": 7})
    body = info.value.to_dict()
    assert body["error_code"] == "VALIDATION_ERROR"
    fields = {e["field"] for e in body["details"]["errors"]}
    assert fields == {"filename", "content_type"}
    assert "x" * 100 not in str(body)


@pytest.mark.parametrize("user", ["nope", "", str(uuid.UUID(int=0)), 42, None])
def test_bad_user_ids_are_validation_errors(harness: Harness, user: Any) -> None:
    """The caller id must be a real UUID."""
    with pytest.raises(ValidationError):
        harness.service.initiate_upload(user, {"filename": "a.m4a", "content_type": "audio/mp4"})


def test_request_of_wrong_type_is_a_validation_error(harness: Harness) -> None:
    """A request that is neither the model nor a mapping is refused clearly."""
    with pytest.raises(ValidationError):
        harness.service.initiate_upload(USER, ["filename", "a.m4a"])  # type: ignore[arg-type]


def test_authorize_context_is_consulted_and_can_refuse(harness: Harness) -> None:
    """authorize_context gets (user, appointment, visit); False is PERMISSION_DENIED, no row."""
    calls: list[tuple[uuid.UUID, uuid.UUID | None, uuid.UUID | None]] = []
    allowed_visit = uuid.uuid4()

    def authorize(user: uuid.UUID, appointment: uuid.UUID | None, visit: uuid.UUID | None) -> bool:
        calls.append((user, appointment, visit))
        return visit == allowed_visit

    service = RecordingService(
        harness.storage,
        harness.repository,
        harness.service.settings,
        authorize,
        clock=harness.clock,
    )
    denied_visit = uuid.uuid4()
    with pytest.raises(PermissionDeniedError) as info:
        service.initiate_upload(
            USER, {"filename": "a.m4a", "content_type": "audio/mp4", "visit_id": str(denied_visit)}
        )
    assert info.value.http_status == 403
    assert service.list_recordings(USER).total == 0
    service.initiate_upload(
        USER, {"filename": "a.m4a", "content_type": "audio/mp4", "visit_id": str(allowed_visit)}
    )
    assert calls == [(USER, None, denied_visit), (USER, None, allowed_visit)]
    assert service.list_recordings(USER).total == 1


def test_keys_never_collide(harness: Harness) -> None:
    """Many recordings in the same second for the same context get distinct keys."""
    keys = {
        harness.service.initiate_upload(
            USER, {"filename": "a.m4a", "content_type": "audio/mp4"}
        ).s3_key
        for _ in range(200)
    }
    assert len(keys) == 200


# --- complete ----------------------------------------------------------------------------


def test_complete_before_upload_is_upload_not_found_and_stays_uploading(harness: Harness) -> None:
    """Completing with nothing in storage is UPLOAD_NOT_FOUND and changes nothing."""
    rid = initiate(harness)
    before = harness.repository.get(rid)
    with pytest.raises(UploadNotFoundError) as info:
        harness.service.complete_upload(USER, rid, {"file_size_bytes": 10})
    assert info.value.http_status == 409
    assert harness.repository.get(rid) == before


def test_complete_verifies_and_stores_what_the_client_knows(harness: Harness) -> None:
    """A verified upload becomes uploaded with size, duration and metadata."""
    rid = initiate(harness)
    row = harness.repository.get(rid)
    assert row is not None
    harness.put(upload_key(row), BODY, "audio/m4a")
    harness.clock.advance(seconds=30)
    metadata = {"device_model": "iPhone 15 Pro", "ios_version": "17.2", "app_version": "1.0.0"}
    done = harness.service.complete_upload(
        USER,
        str(rid),
        {"file_size_bytes": len(BODY), "duration_seconds": 125.3, "recording_metadata": metadata},
    )
    assert done.status is RecordingStatus.UPLOADED
    assert (done.file_size_bytes, done.duration_seconds) == (len(BODY), 125.3)
    assert done.recording_metadata == metadata
    assert done.updated_at == harness.clock.now
    assert harness.service.get_recording(USER, rid) == done


def test_complete_is_idempotent(harness: Harness) -> None:
    """Completing again with the same size returns the recording unchanged."""
    rid = uploaded(harness)
    first = harness.service.get_recording(USER, rid)
    harness.clock.advance(minutes=5)
    again = harness.service.complete_upload(USER, rid, {"file_size_bytes": len(BODY)})
    assert again == first
    harness.service.start_processing(rid)
    assert harness.service.complete_upload(USER, rid, {"file_size_bytes": len(BODY)}).status is (
        RecordingStatus.PROCESSING
    )


def test_complete_again_with_another_size_is_a_mismatch(harness: Harness) -> None:
    """A repeat that disagrees with the verified size is UPLOAD_SIZE_MISMATCH."""
    rid = uploaded(harness)
    with pytest.raises(UploadSizeMismatchError):
        harness.service.complete_upload(USER, rid, {"file_size_bytes": len(BODY) + 1})


def test_size_mismatch_keeps_the_recording_uploading(harness: Harness) -> None:
    """A declared size that differs from storage leaves the recording uploading, with details."""
    rid = initiate(harness)
    row = harness.repository.get(rid)
    assert row is not None
    harness.put(upload_key(row), BODY, "audio/m4a")
    with pytest.raises(UploadSizeMismatchError) as info:
        harness.service.complete_upload(USER, rid, {"file_size_bytes": 10})
    assert info.value.details["stored_size"] == len(BODY)
    assert info.value.details["declared_size"] == 10
    assert harness.service.get_recording(USER, rid).status is RecordingStatus.UPLOADING
    done = harness.service.complete_upload(USER, rid, {"file_size_bytes": len(BODY)})
    assert done.status is RecordingStatus.UPLOADED


def test_declared_size_over_the_limit_is_file_too_large(harness: Harness) -> None:
    """A size over max_file_size is FILE_TOO_LARGE (413) before storage is asked."""
    rid = initiate(harness)
    with pytest.raises(FileTooLargeError) as info:
        harness.service.complete_upload(USER, rid, {"file_size_bytes": 1_000_001})
    assert info.value.http_status == 413


def test_stored_object_of_another_type_is_refused(harness: Harness) -> None:
    """An object whose content type is not the signed one does not complete."""
    rid = initiate(harness)
    row = harness.repository.get(rid)
    assert row is not None
    harness.put(upload_key(row), BODY, "text/html")
    with pytest.raises(UploadVerificationError):
        harness.service.complete_upload(USER, rid, {"file_size_bytes": len(BODY)})
    assert harness.service.get_recording(USER, rid).status is RecordingStatus.UPLOADING


@pytest.mark.parametrize(
    "request_body",
    [
        {"file_size_bytes": -1},
        {"file_size_bytes": "10"},
        {"file_size_bytes": 1.5},
        {"file_size_bytes": True},
        {},
        {"file_size_bytes": 10, "duration_seconds": float("nan")},
        {"file_size_bytes": 10, "duration_seconds": -0.5},
        {"file_size_bytes": 10, "recording_metadata": {"a": "x" * 2001}},
        {"file_size_bytes": 10, "recording_metadata": ["not", "an", "object"]},
        {
            "file_size_bytes": 10,
            "recording_metadata": {"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": {}}}}}}}}},
        },
        {"file_size_bytes": 10, "recording_metadata": {"n": float("inf")}},
    ],
)
def test_bad_complete_requests_are_validation_errors(
    harness: Harness, request_body: dict[str, Any]
) -> None:
    """Malformed completion requests are VALIDATION_ERROR and change nothing."""
    rid = initiate(harness)
    before = harness.repository.get(rid)
    with pytest.raises(ValidationError):
        harness.service.complete_upload(USER, rid, request_body)
    assert harness.repository.get(rid) == before


def test_metadata_of_exactly_2000_characters_is_accepted(harness: Harness) -> None:
    """The limit is inclusive: 2000 characters of compact JSON pass."""
    rid = initiate(harness)
    row = harness.repository.get(rid)
    assert row is not None
    harness.put(upload_key(row), BODY, "audio/m4a")
    metadata = {"a": "x" * (2000 - len('{"a":""}'))}
    done = harness.service.complete_upload(
        USER, rid, {"file_size_bytes": len(BODY), "recording_metadata": metadata}
    )
    assert done.recording_metadata == metadata


def test_after_the_deadline_a_missing_upload_times_out(harness: Harness) -> None:
    """Past the deadline with no object, completion is UPLOAD_TIMEOUT and the recording fails."""
    rid = initiate(harness)
    harness.clock.advance(seconds=600 + 900 + 1)
    with pytest.raises(UploadTimeoutError) as info:
        harness.service.complete_upload(USER, rid, {"file_size_bytes": 10})
    assert info.value.http_status == 410
    assert info.value.details["current_status"] == "failed"
    failed = harness.service.get_recording(USER, rid)
    assert failed.status is RecordingStatus.FAILED
    assert failed.processing_error


def test_a_retried_late_completion_gets_the_same_timeout(harness: Harness) -> None:
    """The phone's retry of a completion answered UPLOAD_TIMEOUT is answered the same."""
    rid = initiate(harness)
    harness.clock.advance(seconds=600 + 900 + 1)
    answers = []
    for _ in range(2):
        with pytest.raises(UploadTimeoutError) as info:
            harness.service.complete_upload(USER, rid, {"file_size_bytes": 10})
        answers.append((info.value.http_status, info.value.to_dict()))
        harness.clock.advance(seconds=30)
    assert answers[0] == answers[1]
    row = harness.repository.get(rid)
    assert row is not None
    assert row.upload_expires_at is not None
    assert answers[0][1]["details"] == {
        "deadline": row.upload_expires_at.isoformat(),
        "recording_id": str(rid),
        "s3_key": row.s3_key,
        "current_status": "failed",
    }


def test_completion_after_the_sweeper_failed_the_upload_times_out(harness: Harness) -> None:
    """A completion that comes after the sweep is UPLOAD_TIMEOUT too, with a past deadline."""
    rid = initiate(harness)
    harness.clock.advance(seconds=600 + 900 + 1)
    assert harness.service.expire_stale_uploads() == 1
    swept = harness.repository.get(rid)
    assert swept is not None
    assert swept.status is RecordingStatus.FAILED
    # the sweeper's claim had moved the deadline to the end of its lease; failing keeps a past one
    assert swept.upload_expires_at is not None
    assert swept.upload_expires_at <= harness.clock.now
    for _ in range(2):
        with pytest.raises(UploadTimeoutError) as info:
            harness.service.complete_upload(USER, rid, {"file_size_bytes": 10})
        assert info.value.http_status == 410
        assert info.value.details == {
            "deadline": swept.upload_expires_at.isoformat(),
            "recording_id": str(rid),
            "s3_key": swept.s3_key,
            "current_status": "failed",
        }
    assert harness.repository.get(rid) == swept


def test_a_recording_failed_after_its_upload_is_no_timeout(harness: Harness) -> None:
    """A verified recording that failed later (transcription) answers INVALID_STATUS_TRANSITION."""
    rid = uploaded(harness)
    harness.clock.advance(hours=5)
    harness.service.mark_failed(rid, error="the transcriber gave up")
    with pytest.raises(InvalidStatusTransitionError) as info:
        harness.service.complete_upload(USER, rid, {"file_size_bytes": len(BODY)})
    assert info.value.details["current_status"] == "failed"


def test_after_the_deadline_an_arrived_upload_still_completes(harness: Harness) -> None:
    """An object that arrived in time completes even if the completion call is late."""
    rid = initiate(harness)
    row = harness.repository.get(rid)
    assert row is not None
    harness.put(upload_key(row), BODY, "audio/m4a")
    harness.clock.advance(hours=5)
    done = harness.service.complete_upload(USER, rid, {"file_size_bytes": len(BODY)})
    assert done.status is RecordingStatus.UPLOADED


def test_completing_a_failed_recording_is_an_invalid_transition(harness: Harness) -> None:
    """A recording failed before its deadline cannot be completed, then or after the deadline."""
    rid = initiate(harness)
    harness.service.mark_failed(rid, error="phone gave up")
    for _ in range(2):
        with pytest.raises(InvalidStatusTransitionError) as info:
            harness.service.complete_upload(USER, rid, {"file_size_bytes": 10})
        assert info.value.details["current_status"] == "failed"
        harness.clock.advance(seconds=600 + 900 + 1)  # the deadline passing changes nothing


class _Reporting:
    """A storage whose HEAD reports what the test says; everything else is the inner one's."""

    def __init__(self, inner: Any, report: StoredObject | None) -> None:
        self._inner = inner
        self.report = report
        self.bucket = inner.bucket

    def create_upload(self, **kwargs: Any) -> UploadTicket:
        ticket: UploadTicket = self._inner.create_upload(**kwargs)
        return ticket

    def object_url(self, key: str) -> str:
        return str(self._inner.object_url(key))

    def head(self, key: str) -> StoredObject | None:
        return self.report


def test_unencrypted_object_is_refused(harness: Harness) -> None:
    """Where storage reports encryption, anything but AES256 fails verification."""
    storage = _Reporting(harness.storage, None)
    service = RecordingService(storage, harness.repository, harness.service.settings)  # type: ignore[arg-type]
    ticket = service.initiate_upload(USER, {"filename": "a.m4a", "content_type": "audio/mp4"})
    storage.report = StoredObject(
        key=ticket.s3_key, size=10, content_type="audio/mp4", server_side_encryption="aws:kms"
    )
    with pytest.raises(UploadVerificationError) as info:
        service.complete_upload(USER, ticket.recording_id, {"file_size_bytes": 10})
    assert info.value.details["stored_encryption"] == "aws:kms"


# --- ownership, listing, reading ---------------------------------------------------------


def test_other_users_recordings_do_not_exist_for_them(harness: Harness) -> None:
    """Every user operation on another user's recording is RECORDING_NOT_FOUND (404)."""
    rid = uploaded(harness)
    operations: list[Callable[[], object]] = [
        lambda: harness.service.get_recording(OTHER, rid),
        lambda: harness.service.get_download_url(OTHER, rid),
        lambda: harness.service.complete_upload(OTHER, rid, {"file_size_bytes": len(BODY)}),
        lambda: harness.service.delete_recording(OTHER, rid),
    ]
    for operation in operations:
        with pytest.raises(RecordingNotFoundError) as info:
            operation()
        assert info.value.http_status == 404
    assert harness.service.list_recordings(OTHER).total == 0
    assert harness.service.get_recording(USER, rid).is_deleted is False


def test_unknown_and_malformed_recording_ids(harness: Harness) -> None:
    """An unknown id is 404; a malformed one is 422."""
    with pytest.raises(RecordingNotFoundError):
        harness.service.get_recording(USER, uuid.uuid4())
    with pytest.raises(RecordingNotFoundError):
        harness.service.get_recording(USER, str(uuid.UUID(int=0)))
    with pytest.raises(ValidationError):
        harness.service.get_recording(USER, "../../etc")


def test_list_filters_and_pages(harness: Harness) -> None:
    """Listing narrows by appointment, visit and status, newest first, with totals."""
    appointment = uuid.uuid4()
    ids = []
    for i in range(5):
        ids.append(initiate(harness, appointment_id=str(appointment) if i % 2 == 0 else None))
        harness.clock.advance(seconds=1)
    done = uploaded(harness)
    initiate(harness, OTHER)

    everything = harness.service.list_recordings(USER, limit=2)
    assert (everything.total, everything.limit, everything.offset) == (6, 2, 0)
    assert [r.id for r in everything.items] == [done, ids[4]]
    by_appointment = harness.service.list_recordings(USER, appointment_id=str(appointment))
    assert {r.id for r in by_appointment.items} == {ids[0], ids[2], ids[4]}
    by_status = harness.service.list_recordings(USER, status="uploaded")
    assert [r.id for r in by_status.items] == [done]
    page = harness.service.list_recordings(
        USER, status=RecordingStatus.UPLOADING, limit=2, offset=4
    )
    assert ([r.id for r in page.items], page.total) == ([ids[0]], 5)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"limit": 0},
        {"limit": 201},
        {"limit": True},
        {"offset": -1},
        {"offset": "3"},
        {"status": "done"},
        {"appointment_id": "x"},
    ],
)
def test_list_arguments_are_validated(harness: Harness, kwargs: dict[str, Any]) -> None:
    """Out-of-range paging and unknown filters are VALIDATION_ERROR."""
    with pytest.raises(ValidationError):
        harness.service.list_recordings(USER, **kwargs)


def test_download_url_needs_a_verified_upload(harness: Harness) -> None:
    """No URL while uploading; afterwards a signed URL for the key, served as audio."""
    rid = initiate(harness, filename="Bello visit.m4a")
    with pytest.raises(InvalidStatusTransitionError):
        harness.service.get_download_url(USER, rid)
    row = harness.repository.get(rid)
    assert row is not None
    harness.put(upload_key(row), BODY, "audio/m4a")
    harness.service.complete_upload(USER, rid, {"file_size_bytes": len(BODY)})
    link = harness.service.get_download_url(USER, rid)
    assert link.expires_in == 600
    assert row.s3_key in link.download_url
    assert harness.storage.download(link.download_url) == BODY
    harness.service.start_processing(rid)
    harness.service.mark_failed(rid, error="transcriber crashed")
    assert harness.service.get_download_url(USER, rid).download_url


def test_delete_is_soft(harness: Harness) -> None:
    """A deleted recording disappears for its owner but its row and object remain."""
    rid = uploaded(harness)
    harness.clock.advance(minutes=1)
    harness.service.delete_recording(USER, str(rid))
    with pytest.raises(RecordingNotFoundError):
        harness.service.get_recording(USER, rid)
    with pytest.raises(RecordingNotFoundError):
        harness.service.delete_recording(USER, rid)
    assert harness.service.list_recordings(USER).total == 0
    row = harness.repository.get(rid)
    assert row is not None
    assert (row.is_deleted, row.deleted_by_user_id, row.deleted_at) == (
        True,
        USER,
        harness.clock.now,
    )
    assert harness.storage.head(row.s3_key) is not None
    with pytest.raises(RecordingNotFoundError):
        harness.service.start_processing(rid)


# --- system operations -------------------------------------------------------------------


def test_processing_and_transcript(harness: Harness) -> None:
    """Uploaded -> processing -> transcribed, with timestamps and transcript fields."""
    rid = uploaded(harness)
    started = harness.service.start_processing(str(rid))
    assert (started.status, started.processing_started_at) == (
        RecordingStatus.PROCESSING,
        harness.clock.now,
    )
    harness.clock.advance(seconds=42)
    done = harness.service.record_transcript(
        rid, text="Bello is healthy.", confidence=0.97, language="en-US", service="whisper"
    )
    assert done.status is RecordingStatus.TRANSCRIBED
    assert (done.transcript_text, done.transcript_confidence) == ("Bello is healthy.", 0.97)
    assert (done.transcript_language, done.transcription_service) == ("en-US", "whisper")
    assert done.processing_completed_at == harness.clock.now
    with pytest.raises(InvalidStatusTransitionError):
        harness.service.mark_failed(rid, error="too late")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"text": None},
        {"text": "t", "confidence": 1.5},
        {"text": "t", "confidence": float("nan")},
        {"text": "t", "confidence": True},
        {"text": "t", "language": "english please"},
        {"text": "t", "service": "x" * 51},
    ],
)
def test_transcript_arguments_are_validated(harness: Harness, kwargs: dict[str, Any]) -> None:
    """Bad transcript values are VALIDATION_ERROR and the recording keeps its status."""
    rid = uploaded(harness)
    harness.service.start_processing(rid)
    with pytest.raises(ValidationError):
        harness.service.record_transcript(rid, **kwargs)
    assert harness.service.get_recording(USER, rid).status is RecordingStatus.PROCESSING


def test_invalid_system_transitions(harness: Harness) -> None:
    """Processing an uploading recording, or transcribing an uploaded one, is refused (409)."""
    rid = initiate(harness)
    with pytest.raises(InvalidStatusTransitionError) as info:
        harness.service.start_processing(rid)
    assert info.value.details == {
        "current_status": "uploading",
        "requested_status": "processing",
        "allowed_statuses": ["failed", "uploaded"],
    }
    done = uploaded(harness)
    with pytest.raises(InvalidStatusTransitionError):
        harness.service.record_transcript(done, text="x")


def test_mark_failed_keeps_the_reason(harness: Harness) -> None:
    """mark_failed records why, truncating an enormous reason; empty reasons are refused."""
    rid = uploaded(harness)
    with pytest.raises(ValidationError):
        harness.service.mark_failed(rid, error="  ")
    failed = harness.service.mark_failed(rid, error="E" * 20_000)
    assert failed.status is RecordingStatus.FAILED
    assert failed.processing_error is not None
    assert len(failed.processing_error) == 10_000


def test_expire_stale_uploads(harness: Harness) -> None:
    """Past-deadline uploads fail, arrived ones are promoted, fresh ones are untouched."""
    missing = [initiate(harness) for _ in range(5)]
    arrived = initiate(harness)
    row = harness.repository.get(arrived)
    assert row is not None
    harness.put(upload_key(row), BODY, "audio/m4a")
    harness.clock.advance(seconds=1600)
    fresh = initiate(harness)

    assert harness.service.expire_stale_uploads(batch_size=2) == 5
    for rid in missing:
        recording = harness.service.get_recording(USER, rid)
        assert recording.status is RecordingStatus.FAILED
        assert recording.processing_error == "The upload deadline passed without a file"
    promoted = harness.service.get_recording(USER, arrived)
    assert (promoted.status, promoted.file_size_bytes) == (RecordingStatus.UPLOADED, len(BODY))
    assert harness.service.get_recording(USER, fresh).status is RecordingStatus.UPLOADING
    assert harness.service.expire_stale_uploads() == 0
    later = harness.clock.now + dt.timedelta(hours=1)
    assert harness.service.expire_stale_uploads(now=later) == 1


def test_expire_stale_uploads_validates_its_arguments(harness: Harness) -> None:
    """A naive 'now' or a non-positive batch size is refused."""
    with pytest.raises(ValidationError):
        harness.service.expire_stale_uploads(now=dt.datetime(2026, 1, 1))  # noqa: DTZ001
    with pytest.raises(ValidationError):
        harness.service.expire_stale_uploads(batch_size=0)


def test_settings_default_from_the_environment(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A service built without settings reads them from the environment."""
    monkeypatch.setenv("HELPPET_MAX_FILE_SIZE", "1234")
    service = RecordingService(harness.storage, InMemoryRepository())
    assert service.settings.max_file_size == 1234


class _HeadHook(InMemoryStorage):
    """Storage that runs ``meanwhile`` once, when the sweeper looks for an upload's object."""

    meanwhile: Callable[[], object] | None = None

    def head(self, key: str) -> Any:
        """Run the pending action once, then answer."""
        action, self.meanwhile = self.meanwhile, None
        if action is not None:
            action()
        return super().head(key)


def _hooked(harness: Harness) -> tuple[RecordingService, _HeadHook]:
    storage = _HeadHook(BUCKET)
    settings = harness.service.settings
    service = RecordingService(storage, harness.repository, settings, clock=harness.clock)
    return service, storage


def test_an_upload_renewed_while_the_sweeper_looks_stays_uploading(harness: Harness) -> None:
    """The client renewed its ticket as the sweeper checked storage: the new deadline holds."""
    service, storage = _hooked(harness)
    rid = service.initiate_upload(USER, {"filename": "a.m4a", "content_type": "audio/m4a"})
    harness.clock.advance(seconds=1600)
    storage.meanwhile = lambda: service.renew_upload(USER, rid.recording_id)
    assert service.expire_stale_uploads() == 0
    recording = service.get_recording(USER, rid.recording_id)
    assert recording.status is RecordingStatus.UPLOADING
    assert recording.upload_expires_at is not None
    assert recording.upload_expires_at > harness.clock.now


def test_an_upload_deleted_while_the_sweeper_looks_does_not_stop_the_sweep(
    harness: Harness,
) -> None:
    """The user deleted one stale upload mid-sweep: it is skipped, the others are settled."""
    service, storage = _hooked(harness)
    ids = [
        service.initiate_upload(USER, {"filename": "a.m4a", "content_type": "audio/m4a"})
        for _ in range(3)
    ]
    harness.clock.advance(seconds=1600)
    first = harness.repository.list_stale_uploads(now=harness.clock.now, limit=1)[0].id
    storage.meanwhile = lambda: service.delete_recording(USER, first)
    assert service.expire_stale_uploads() == 2
    statuses = {t.recording_id: harness.repository.get(t.recording_id) for t in ids}
    assert statuses[first] is not None and statuses[first].is_deleted  # type: ignore[union-attr]
    others = [r for rid, r in statuses.items() if rid != first]
    assert [r.status for r in others] == [RecordingStatus.FAILED] * 2  # type: ignore[union-attr]


def test_times_are_reckoned_in_utc_across_daylight_saving(harness: Harness) -> None:
    """A now= given in a zone whose clocks moved: the 30 days of retention are real days."""
    berlin = zoneinfo.ZoneInfo("Europe/Berlin")
    deleted_at = dt.datetime(2024, 3, 1, 10, 30, tzinfo=dt.UTC)
    harness.clock.now = deleted_at - dt.timedelta(days=1)
    rid = uploaded(harness)
    harness.clock.now = deleted_at
    harness.service.delete_recording(USER, rid)
    almost = dt.datetime(2024, 3, 31, 10, 0, tzinfo=dt.UTC)  # 29 days 23.5 hours later
    assert harness.service.purge_deleted(retention_days=30, now=almost.astimezone(berlin)) == 0
    after = almost + dt.timedelta(hours=1)
    assert harness.service.purge_deleted(retention_days=30, now=after.astimezone(berlin)) == 1


def test_purge_refuses_a_retention_beyond_the_settings_range(harness: Harness) -> None:
    """More than 36,500 days is VALIDATION_ERROR naming retention_days, not an OverflowError."""
    with pytest.raises(ValidationError) as caught:
        harness.service.purge_deleted(retention_days=1_000_000)
    assert caught.value.details["errors"][0]["field"] == "retention_days"


@pytest.mark.parametrize("age", [-1, 10**13, 1.5, "3600", True, None])
def test_reconcile_refuses_a_bad_orphan_age(harness: Harness, age: object) -> None:
    """A negative, huge or non-integer orphan_min_age_seconds is VALIDATION_ERROR naming it."""
    harness.put("recordings/stray.m4a", BODY, "audio/m4a")
    harness.clock.advance(days=2)
    with pytest.raises(ValidationError) as caught:
        harness.service.reconcile(delete_orphans=True, orphan_min_age_seconds=age)  # type: ignore[arg-type]
    assert caught.value.details["errors"][0]["field"] == "orphan_min_age_seconds"
    assert harness.storage.head("recordings/stray.m4a") is not None


def test_reconcile_takes_an_orphan_age_of_zero(harness: Harness) -> None:
    """Zero seconds is allowed: every orphan may be deleted."""
    harness.put("recordings/stray.m4a", BODY, "audio/m4a")
    report = harness.service.reconcile(delete_orphans=True, orphan_min_age_seconds=0)
    assert report.orphan_keys == ["recordings/stray.m4a"]


def test_a_purged_uploads_staging_object_is_a_leftover(harness: Harness) -> None:
    """Bytes a ticket writes after its recording was deleted and purged: reported, removable."""
    ticket = harness.service.initiate_upload(
        USER, {"filename": "a.m4a", "content_type": "audio/m4a"}
    )
    harness.service.delete_recording(USER, ticket.recording_id)
    harness.clock.advance(seconds=1)
    assert harness.service.purge_deleted(retention_days=0) == 1
    key = ticket.upload_fields["key"]
    harness.put(key, BODY, "audio/m4a")
    harness.clock.advance(days=2)
    report = harness.service.reconcile(delete_orphans=True)
    assert key in report.leftover_staging_keys
    assert harness.storage.head(key) is None


class _CompletionLandsFirst(InMemoryRepository):
    """Runs ``before_lookup`` once, just before its first ``find_by_upload_key`` answers."""

    before_lookup: Callable[[], object] | None = None

    def find_by_upload_key(self, key: str) -> Recording | None:
        hook, self.before_lookup = self.before_lookup, None
        if hook is not None:
            hook()
        return super().find_by_upload_key(key)


def test_a_staging_object_a_completion_moves_during_reconcile_is_no_leftover(
    harness: Harness,
) -> None:
    """The completion lands between reconcile's listing and its check: nothing is reported."""
    repository = _CompletionLandsFirst()
    service = RecordingService(
        harness.storage, repository, harness.service.settings, clock=harness.clock
    )
    ticket = service.initiate_upload(USER, {"filename": "a.m4a", "content_type": "audio/m4a"})
    harness.put(ticket.upload_fields["key"], BODY, "audio/m4a")
    repository.before_lookup = lambda: service.complete_upload(
        USER, ticket.recording_id, {"file_size_bytes": len(BODY)}
    )
    report = service.reconcile()
    assert report.leftover_staging_keys == []
    assert service.get_recording(USER, ticket.recording_id).status is RecordingStatus.UPLOADED
