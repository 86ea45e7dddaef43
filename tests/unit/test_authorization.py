"""An authorization sweep: no user operation reaches another user's recording."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

from helppet_recordings import RecordingNotFoundError
from tests.unit.conftest import Harness

OWNER = uuid.UUID("11111111-1111-4111-8111-111111111111")
INTRUDERS = [uuid.UUID("22222222-2222-4222-8222-222222222222"), uuid.uuid4()]
BODY = b"\x00\x00\x00\x18ftypM4A " + b"audio" * 50


def _recordings_in_every_state(h: Harness) -> dict[str, uuid.UUID]:
    def start(idempotency_key: str | None = None) -> tuple[uuid.UUID, str]:
        body = {
            "filename": "a.m4a",
            "content_type": "audio/mp4",
            "idempotency_key": idempotency_key,
        }
        ticket = h.service.initiate_upload(OWNER, {k: v for k, v in body.items() if v})
        return ticket.recording_id, ticket.upload_fields["key"]

    def uploaded() -> uuid.UUID:
        rid, key = start()
        h.put(key, BODY)
        h.service.complete_upload(OWNER, rid, {"file_size_bytes": len(BODY)})
        return rid

    ids = {"uploading": start("owner-key")[0], "uploaded": uploaded()}
    ids["processing"] = uploaded()
    h.service.start_processing(ids["processing"])
    ids["transcribed"] = uploaded()
    h.service.start_processing(ids["transcribed"])
    h.service.record_transcript(ids["transcribed"], text="private")
    ids["failed"] = uploaded()
    h.service.mark_failed(ids["failed"], error="x")
    ids["deleted"] = uploaded()
    h.service.delete_recording(OWNER, ids["deleted"])
    return ids


def _user_operations(h: Harness, user: uuid.UUID) -> list[Callable[[uuid.UUID], object]]:
    """Every user operation that names a recording, as ``user``."""

    def get(rid: uuid.UUID) -> object:
        return h.service.get_recording(user, rid)

    def download(rid: uuid.UUID) -> object:
        return h.service.get_download_url(user, rid)

    def complete(rid: uuid.UUID) -> object:
        return h.service.complete_upload(user, rid, {"file_size_bytes": len(BODY)})

    def delete(rid: uuid.UUID) -> object:
        h.service.delete_recording(user, rid)
        return None

    def renew(rid: uuid.UUID) -> object:
        return h.service.renew_upload(user, rid)

    return [get, download, complete, delete, renew]


def test_no_user_operation_crosses_owners(harness: Harness) -> None:
    """Every user operation, on a recording in every state, as another user: 404, no change."""
    ids = _recordings_in_every_state(harness)
    before = harness.repository.list_by_key(prefix="", after=None, limit=1000)
    attempts = 0
    for intruder in INTRUDERS:
        operations = _user_operations(harness, intruder)
        for rid in ids.values():
            for operation in operations:
                with pytest.raises(RecordingNotFoundError) as info:
                    operation(rid)
                assert info.value.details == {"recording_id": str(rid)}
                attempts += 1
        listing = harness.service.list_recordings(intruder, limit=200)
        assert (listing.total, listing.items) == (0, [])
        # the owner's idempotency key leads an intruder to a recording of their own
        ticket = harness.service.initiate_upload(
            intruder,
            {"filename": "a.m4a", "content_type": "audio/mp4", "idempotency_key": "owner-key"},
        )
        assert ticket.recording_id != ids["uploading"]
        assert str(intruder) in ticket.s3_key
    after = [
        r
        for r in harness.repository.list_by_key(prefix="", after=None, limit=1000)
        if r.recorded_by_user_id == OWNER
    ]
    assert after == before
    assert attempts == len(INTRUDERS) * len(ids) * 5


def test_errors_for_foreign_and_missing_recordings_are_identical(harness: Harness) -> None:
    """Another user's recording and a recording that never existed answer the same way."""
    ids = _recordings_in_every_state(harness)
    foreign = harness.service.get_recording
    with pytest.raises(RecordingNotFoundError) as theirs:
        foreign(INTRUDERS[0], ids["uploaded"])
    missing = uuid.uuid4()
    with pytest.raises(RecordingNotFoundError) as nobody:
        foreign(INTRUDERS[0], missing)
    assert theirs.value.message == nobody.value.message
    assert theirs.value.http_status == nobody.value.http_status == 404
    assert set(theirs.value.details) == set(nobody.value.details) == {"recording_id"}
