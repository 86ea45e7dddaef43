"""Replaying an upload ticket after completion: the scenario both storage backends must pass.

The phone's ticket stays valid until it expires, also after completion. A
replay (same fields, other bytes) may be accepted by storage, but it only
lands on the ticket's staging key: the verified audio at ``s3_key`` is what
every later download serves, and ``reconcile`` reports and removes the
replayed bytes. A ticket that pins the declared SHA-256 names ``s3_key``
itself: storage refuses other bytes, and the same bytes change nothing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import math
import struct
import threading
import time
import uuid
import wave
from typing import Final

import httpx
import pytest

from helppet_recordings import (
    RecordingError,
    RecordingService,
    RecordingStatus,
    UploadVerificationError,
)
from helppet_recordings.schemas import InitiateUploadResponse

STATUSES: Final = ("uploaded", "processing", "transcribed", "failed", "deleted", "purged")
"""Where a recording can be when its ticket is replayed (``deleted`` is a soft delete)."""

SAMPLE_RATE: Final = 8000
HTML_PAGE: Final = (
    b"<!DOCTYPE html>\n<html><head><title>Pay now</title></head>"
    b"<body><script>location='https://example.invalid/'</script></body></html>\n"
)


def wav(seconds: float, frequency: float) -> bytes:
    """A mono 16-bit WAV tone, written with the standard library's ``wave`` module."""
    count = round(seconds * SAMPLE_RATE)
    samples = (
        round(8000 * math.sin(2 * math.pi * frequency * i / SAMPLE_RATE)) for i in range(count)
    )
    output = io.BytesIO()
    with wave.open(output, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(SAMPLE_RATE)
        writer.writeframes(struct.pack(f"<{count}h", *samples))
    return output.getvalue()


ORIGINAL: Final = wav(0.5, 440.0)
SAME_SIZE: Final = wav(0.5, 660.0)
OTHER_SIZE: Final = wav(0.75, 880.0)


def post(ticket: InitiateUploadResponse, body: bytes) -> httpx.Response:
    """POST ``body`` with every field of ``ticket``, as the phone does."""
    content_type = ticket.upload_fields["Content-Type"]
    return httpx.post(
        ticket.upload_url,
        data=ticket.upload_fields,
        files={"file": ("recording.wav", body, content_type)},
        timeout=30,
    )


def initiate(
    service: RecordingService, user: uuid.UUID, filename: str = "visit.wav"
) -> InitiateUploadResponse:
    """Initiate a WAV upload for ``user``."""
    return service.initiate_upload(user, {"filename": filename, "content_type": "audio/wav"})


def uploaded(service: RecordingService, user: uuid.UUID) -> InitiateUploadResponse:
    """Initiate, upload ORIGINAL over HTTP and complete; return the ticket."""
    ticket = initiate(service, user)
    response = post(ticket, ORIGINAL)
    assert response.is_success, response.text
    done = service.complete_upload(user, ticket.recording_id, {"file_size_bytes": len(ORIGINAL)})
    assert done.status is RecordingStatus.UPLOADED
    return ticket


def move_to(service: RecordingService, user: uuid.UUID, rid: uuid.UUID, status: str) -> None:
    """Take an ``uploaded`` recording to ``status`` the way a host and its worker do."""
    if status in {"processing", "transcribed", "failed"}:
        service.start_processing(rid)
    if status == "transcribed":
        service.record_transcript(rid, text="The patient is well.", confidence=0.9)
    if status == "failed":
        service.mark_failed(rid, error="transcriber unavailable")
    if status in {"deleted", "purged"}:
        service.delete_recording(user, rid)
    if status == "purged":
        later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
        assert service.purge_deleted(retention_days=0, now=later) == 1


def served(service: RecordingService, user: uuid.UUID, rid: uuid.UUID) -> bytes:
    """Download the recording through a fresh download URL, over HTTP."""
    url = service.get_download_url(user, rid).download_url
    response = httpx.get(url, timeout=30)
    assert response.status_code == 200, response.text
    return response.content


def assert_replay_is_harmless(service: RecordingService, status: str) -> list[bytes]:
    """Replay a completed upload's ticket in ``status``; assert the verified audio holds.

    Returns what was at ``s3_key`` (downloaded over HTTP where the status allows
    a download, read from storage otherwise) after each replay; ``b""`` once purged.
    """
    user = uuid.uuid4()
    ticket = uploaded(service, user)
    rid = ticket.recording_id
    staging_key = ticket.upload_fields["key"]
    assert staging_key != ticket.s3_key
    move_to(service, user, rid, status)
    storage = service.storage
    after_replays: list[bytes] = []
    accepted = 0
    for body in (SAME_SIZE, OTHER_SIZE):
        replay = post(ticket, body)
        assert replay.status_code < 500, replay.text
        accepted += replay.is_success
        if status in {"deleted", "purged"}:
            with pytest.raises(RecordingError) as refused:
                service.get_download_url(user, rid)
            assert refused.value.error_code == "RECORDING_NOT_FOUND"
        if status == "purged":
            assert storage.head(ticket.s3_key) is None
            assert storage.read_range(ticket.s3_key, offset=0, length=len(ORIGINAL)) is None
            after_replays.append(b"")
            continue
        at_key = (
            storage.read_range(ticket.s3_key, offset=0, length=len(OTHER_SIZE))
            if status == "deleted"
            else served(service, user, rid)
        )
        assert at_key is not None
        assert hashlib.sha256(at_key).digest() == hashlib.sha256(ORIGINAL).digest()
        after_replays.append(at_key)
    assert accepted == 2, "storage refused a replay: the ticket was meant to stay valid"

    report = service.reconcile()
    assert staging_key in report.leftover_staging_keys
    assert report.deleted_staging == 0
    assert storage.head(staging_key) is not None
    cleaned = service.reconcile(delete_orphans=True)
    assert staging_key in cleaned.leftover_staging_keys
    assert cleaned.deleted_staging == len(cleaned.leftover_staging_keys)
    assert storage.head(staging_key) is None
    assert service.reconcile().leftover_staging_keys == []
    if status not in {"deleted", "purged"}:
        assert served(service, user, rid) == ORIGINAL
    return after_replays


def assert_html_is_refused(service: RecordingService) -> None:
    """An HTML page uploaded on an audio/wav ticket fails completion; the recording waits."""
    user = uuid.uuid4()
    ticket = initiate(service, user)
    response = post(ticket, HTML_PAGE)
    assert response.status_code < 500, response.text
    with pytest.raises(UploadVerificationError) as refused:
        service.complete_upload(user, ticket.recording_id, {"file_size_bytes": len(HTML_PAGE)})
    assert refused.value.error_code == "UPLOAD_VERIFICATION_FAILED"
    assert refused.value.details["reason"] == "html_document"
    assert service.get_recording(user, ticket.recording_id).status is RecordingStatus.UPLOADING
    assert service.storage.head(ticket.s3_key) is None


def pinned_uploaded(service: RecordingService, user: uuid.UUID) -> InitiateUploadResponse:
    """Initiate declaring ORIGINAL's SHA-256, upload it over HTTP, complete; return the ticket."""
    ticket = service.initiate_upload(
        user,
        {
            "filename": "visit.wav",
            "content_type": "audio/wav",
            "content_sha256": hashlib.sha256(ORIGINAL).hexdigest(),
        },
    )
    assert ticket.upload_fields["key"] == ticket.s3_key  # the ticket names the final key
    response = post(ticket, ORIGINAL)
    assert response.is_success, response.text
    done = service.complete_upload(user, ticket.recording_id, {"file_size_bytes": len(ORIGINAL)})
    assert done.status is RecordingStatus.UPLOADED
    assert service.storage.head(ticket.s3_key) is not None
    return ticket


def assert_pinned_replay_is_harmless(service: RecordingService, status: str) -> bytes:
    """Replay a pinned ticket in ``status``; assert the audio at ``s3_key`` never changes.

    Other bytes are refused by storage (400); the same bytes are accepted and
    leave the download as it was. After a purge they land where no recording
    reads them, and ``reconcile`` reports and removes them. Returns what is at
    ``s3_key`` at the end (``b""`` once purged and reconciled).
    """
    user = uuid.uuid4()
    ticket = pinned_uploaded(service, user)
    rid = ticket.recording_id
    storage = service.storage
    verified = storage.head(ticket.s3_key)
    assert verified is not None
    move_to(service, user, rid, status)
    for body in (SAME_SIZE, OTHER_SIZE):
        refused = post(ticket, body)
        assert refused.status_code == 400, refused.text
        assert "BadDigest" in refused.text
    same = post(ticket, ORIGINAL)
    assert same.is_success, same.text
    stored = storage.head(ticket.s3_key)
    assert stored is not None
    at_key = storage.read_range(ticket.s3_key, offset=0, length=len(OTHER_SIZE))
    assert at_key == ORIGINAL
    if status == "purged":
        report = service.reconcile(orphan_min_age_seconds=0)
        assert report.orphan_keys == [ticket.s3_key]
        service.reconcile(delete_orphans=True, orphan_min_age_seconds=0)
        assert storage.head(ticket.s3_key) is None
        return b""
    assert service.reconcile().orphan_keys == []
    if status == "deleted":
        return at_key
    assert stored.etag == verified.etag  # the same bytes keep the ETag completion verified
    return served(service, user, rid)


def assert_pinned_replays_during_completion_are_harmless(service: RecordingService) -> None:
    """Replay a pinned ticket from four threads while completion verifies; nothing changes.

    Other bytes are refused throughout; the same bytes may land any number of
    times, before, during and after the completion, and the recording is
    verified with the ETag the audio keeps and served unchanged.
    """
    user = uuid.uuid4()
    ticket = service.initiate_upload(
        user,
        {
            "filename": "visit.wav",
            "content_type": "audio/wav",
            "content_sha256": hashlib.sha256(ORIGINAL).hexdigest(),
        },
    )
    assert post(ticket, ORIGINAL).is_success
    stop = threading.Event()
    answers: list[tuple[bytes, int]] = []

    def replay(body: bytes) -> None:
        with httpx.Client(timeout=30) as client:
            while not stop.is_set():
                content_type = ticket.upload_fields["Content-Type"]
                response = client.post(
                    ticket.upload_url,
                    data=ticket.upload_fields,
                    files={"file": ("recording.wav", body, content_type)},
                )
                answers.append((body, response.status_code))

    threads = [
        threading.Thread(target=replay, args=(body,))
        for body in (ORIGINAL, ORIGINAL, SAME_SIZE, OTHER_SIZE)
    ]
    for thread in threads:
        thread.start()
    try:
        while len(answers) < 8:
            time.sleep(0.01)
        done = service.complete_upload(
            user, ticket.recording_id, {"file_size_bytes": len(ORIGINAL)}
        )
        assert done.status is RecordingStatus.UPLOADED
        assert done.checksum_status == "verified"
        served_during = served(service, user, ticket.recording_id)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    assert served_during == ORIGINAL
    assert served(service, user, ticket.recording_id) == ORIGINAL
    assert {status for body, status in answers if body == ORIGINAL} <= {200, 201, 204}
    assert {status for body, status in answers if body != ORIGINAL} == {400}
    assert sum(body == ORIGINAL for body, _ in answers) >= 2
