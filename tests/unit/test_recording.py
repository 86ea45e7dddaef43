"""The Recording entity's repr: personal fields by their size only, everything else as it is."""

from __future__ import annotations

import logging
import uuid

import attrs
import pytest

from helppet_recordings import InMemoryRepository, RecordingService
from helppet_recordings.recording import Recording
from helppet_recordings.schemas import (
    CompleteUploadRequest,
    InitiateUploadRequest,
    RecordingResponse,
)
from helppet_recordings.status import RecordingStatus
from helppet_recordings.storage.memory import InMemoryStorage
from helppet_recordings.testing.factories import make_recording
from tests.support.privacy import (
    METADATA_VALUE,
    ORIGINAL_FILENAME,
    TRANSCRIPT,
    markers_in,
)

PROCESSING_ERROR = "Transcriber quoted: Bello the beagle, Jane Roe, 12 Oak Lane"


def personal_recording() -> Recording:
    """A failed recording whose filename, metadata, transcript and error name people."""
    return make_recording(
        status=RecordingStatus.FAILED,
        original_filename=ORIGINAL_FILENAME,
        recording_metadata={"owner": METADATA_VALUE, "pet": "Bello"},
        transcript_text=TRANSCRIPT,
        processing_error=PROCESSING_ERROR,
    )


def test_repr_shows_personal_fields_by_size_only() -> None:
    """The repr (so str, f-strings, logs, tracebacks) names no filename, metadata or text."""
    recording = personal_recording()
    shown = repr(recording)
    assert markers_in(shown) == [], shown
    assert markers_in(str(recording)) == []
    assert markers_in(f"{recording!r} {[recording]} {recording.copy()!r}") == []
    assert f"original_filename=<{len(ORIGINAL_FILENAME)} characters>" in shown
    assert f"transcript_text=<{len(TRANSCRIPT)} characters>" in shown
    assert f"processing_error=<{len(PROCESSING_ERROR)} characters>" in shown
    assert "recording_metadata=<2 keys>" in shown
    # Everything else is shown as before.
    assert f"id={recording.id!r}" in shown
    assert f"s3_key={recording.s3_key!r}" in shown
    assert "status=<RecordingStatus.FAILED: 'failed'>" in shown


def test_repr_of_unset_personal_fields_is_none() -> None:
    """A recording without a filename, metadata, transcript or error shows None for them."""
    shown = repr(make_recording(original_filename=None))
    for name in ("original_filename", "transcript_text", "processing_error", "recording_metadata"):
        assert f"{name}=None" in shown


def test_a_logged_recording_shows_no_personal_values(caplog: pytest.LogCaptureFixture) -> None:
    """Logging a recording, as %r or in an exception's message, keeps its content out."""
    recording = personal_recording()
    logger = logging.getLogger("host")
    with caplog.at_level(logging.INFO, logger="host"):
        logger.info("loaded %r", recording)
        try:
            raise RuntimeError(f"could not save {recording!r}")
        except RuntimeError:
            logger.exception("save failed")
    assert markers_in(caplog.text) == [], caplog.text


def test_equality_still_compares_the_personal_fields() -> None:
    """Redacting the repr changes nothing else: equal values compare equal, others differ."""
    recording = personal_recording()
    assert recording == recording.copy()
    assert recording != recording.copy(transcript_text=TRANSCRIPT + ".")
    assert recording != recording.copy(original_filename="other.m4a")
    assert recording != recording.copy(recording_metadata={"owner": "someone else"})
    assert recording != recording.copy(processing_error=None)
    assert attrs.asdict(recording)["transcript_text"] == TRANSCRIPT
    assert attrs.evolve(recording, transcript_text=None).transcript_text is None


def test_a_stored_recording_repr_holds_no_filename() -> None:
    """What the service stores for an initiate is shown without the client's filename."""
    service = RecordingService(storage=InMemoryStorage(), repository=InMemoryRepository())
    ticket = service.initiate_upload(
        uuid.uuid4(), {"filename": ORIGINAL_FILENAME, "content_type": "audio/mp4"}
    )
    stored = service.repository.get(ticket.recording_id)
    assert stored is not None
    assert stored.original_filename == ORIGINAL_FILENAME
    assert markers_in(repr(stored)) == []


def test_wire_models_repr_hides_personal_fields_but_json_keeps_them() -> None:
    """Requests and responses print no filename, metadata or transcript; their JSON is whole."""
    recording = personal_recording()
    response = RecordingResponse.from_recording(recording)
    initiate = InitiateUploadRequest(filename=ORIGINAL_FILENAME, content_type="audio/mp4")
    complete = CompleteUploadRequest(
        file_size_bytes=10, recording_metadata={"owner": METADATA_VALUE}
    )
    for model in (response, initiate, complete):
        assert markers_in(repr(model)) == []
        assert markers_in(str(model)) == []
    assert response.transcript_text == TRANSCRIPT
    assert TRANSCRIPT in response.model_dump_json()
    assert ORIGINAL_FILENAME in initiate.model_dump_json()
    assert METADATA_VALUE in complete.model_dump_json()
