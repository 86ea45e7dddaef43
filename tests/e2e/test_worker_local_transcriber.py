"""The worker with the real LocalTranscriber, end to end on SeaweedFS and PostgreSQL.

The phone's upload is a real multipart POST of the packaged speech sample to
SeaweedFS with the signed ticket; the worker reads it back from S3 in ranged
reads, measures it, runs PocketSphinx on it and stores the transcript in
PostgreSQL.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import attrs
import httpx
import pytest

from helppet_recordings import (
    InitiateUploadResponse,
    RecordingService,
    RecordingSettings,
    RecordingStatus,
    S3Storage,
    SqlAlchemyRepository,
)
from helppet_recordings.transcription import (
    LocalTranscriber,
    Transcript,
    TranscriptionInput,
    TranscriptionWorker,
    speech_sample,
)
from tests.support.postgres import PostgresServer
from tests.support.seaweedfs import SeaweedEndpoint, make_client

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """A migrated database on a throwaway PostgreSQL cluster; fails, never skips, if it cannot."""
    server = PostgresServer()
    try:
        server.start(timeout=60)
    except RuntimeError as exc:
        server.stop()
        pytest.fail(f"PostgreSQL could not be started: {exc}", pytrace=False)
    try:
        url = server.create_database("worker_e2e")
        with SqlAlchemyRepository.from_url(url) as repository:
            repository.create_schema()
        yield url
    finally:
        server.stop()


@attrs.define
class Recorder:
    """Passes each call on to the real transcriber, keeping what it was given."""

    inner: LocalTranscriber
    inputs: list[TranscriptionInput] = attrs.Factory(list)

    @property
    def name(self) -> str:
        """The real transcriber's name."""
        return self.inner.name

    def transcribe(self, audio: TranscriptionInput) -> Transcript:
        """Keep the input, then transcribe it for real."""
        self.inputs.append(audio)
        return self.inner.transcribe(audio)


@pytest.fixture
def service(
    seaweed: SeaweedEndpoint, seaweed_bucket: str, postgres_url: str
) -> Iterator[RecordingService]:
    """A service over a fresh SeaweedFS bucket and the migrated PostgreSQL database."""
    settings = RecordingSettings(s3_bucket_name=seaweed_bucket, max_file_size=1_000_000)
    with SqlAlchemyRepository.from_url(postgres_url) as repository:
        yield RecordingService(
            S3Storage(seaweed_bucket, client=make_client(seaweed)), repository, settings
        )


def _upload_speech(
    service: RecordingService, user: uuid.UUID, **declared: float
) -> InitiateUploadResponse:
    """POST the speech sample to SeaweedFS with a fresh ticket, complete it; return the ticket.

    ``declared`` is what the phone declares on completion besides the size.
    """
    sample = speech_sample()
    ticket = service.initiate_upload(
        user, {"filename": "exam-room-2.flac", "content_type": sample.mime_type}
    )
    posted = httpx.post(
        ticket.upload_url,
        data=ticket.upload_fields,
        files={"file": ("exam-room-2.flac", sample.data, sample.mime_type)},
        timeout=30,
    )
    assert posted.status_code == 204, posted.text
    service.complete_upload(
        user, ticket.recording_id, {"file_size_bytes": len(sample.data), **declared}
    )
    return ticket


def test_an_uploaded_speech_recording_is_transcribed_locally(
    service: RecordingService, seaweed_bucket: str
) -> None:
    """POST to SeaweedFS, complete, run the worker once: transcribed, text, measured duration."""
    sample = speech_sample()
    user = uuid.uuid4()
    ticket = _upload_speech(service, user, duration_seconds=99.0)

    transcriber = Recorder(LocalTranscriber())
    assert TranscriptionWorker(service, transcriber).run_once() == 1

    done = service.get_recording(user, ticket.recording_id)
    assert done.status is RecordingStatus.TRANSCRIBED, done.processing_error
    assert done.transcript_text
    words = set(re.findall(r"[a-z']+", done.transcript_text.lower()))
    assert words & set(re.findall(r"[a-z']+", sample.text.lower())), done.transcript_text
    assert done.transcription_service == "local-pocketsphinx"
    assert done.audio is not None
    assert done.audio.duration_seconds == pytest.approx(sample.duration_seconds, abs=0.3)
    assert (done.audio.format, done.audio.sample_rate, done.audio.channels) == ("flac", 16000, 1)
    assert done.duration_seconds == 99.0  # what the phone declared stays apart from the measure
    [given] = transcriber.inputs
    assert given.s3_uri == f"s3://{seaweed_bucket}/{ticket.s3_key}"
    assert (given.attempt, given.size, given.mime_type) == (1, len(sample.data), "audio/flac")


@pytest.mark.parametrize("change", ["same_size", "grown"])
def test_audio_changed_after_completion_is_failed_not_transcribed(
    service: RecordingService, seaweed: SeaweedEndpoint, seaweed_bucket: str, change: str
) -> None:
    """Other bytes written at the key after completion: the worker fails it, reads none of them.

    SeaweedFS refuses a replay of a pinned ticket with other bytes (BadDigest),
    so they are written directly, as anyone with write access to the bucket could.
    """
    sample = speech_sample()
    user = uuid.uuid4()
    ticket = _upload_speech(service, user)
    half = len(sample.data) // 2
    other = {
        "same_size": sample.data[:half] + bytes(len(sample.data) - half),
        "grown": sample.data + bytes(4096),  # its first bytes are exactly the verified ones
    }[change]
    make_client(seaweed).put_object(
        Bucket=seaweed_bucket,
        Key=ticket.s3_key,
        Body=other,
        ContentType=sample.mime_type,
        ServerSideEncryption="AES256",
    )

    transcriber = Recorder(LocalTranscriber())
    assert TranscriptionWorker(service, transcriber).run_once() == 1
    failed = service.get_recording(user, ticket.recording_id)
    assert failed.status is RecordingStatus.FAILED
    assert failed.processing_error is not None
    assert failed.processing_error.startswith("UPLOAD_VERIFICATION_FAILED (object_changed)")
    assert ticket.s3_key not in failed.processing_error
    assert failed.transcript_text is None
    assert failed.audio is None
    assert transcriber.inputs == []
