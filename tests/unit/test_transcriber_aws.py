"""AwsTranscribeTranscriber against moto's Transcribe and S3.

moto runs no recognition and writes no result file: it moves a job from
QUEUED to IN_PROGRESS to COMPLETED, one step per GetTranscriptionJob, and
reports where the result would be. The tests put the result JSON, in the
shape Transcribe documents, where the job will write it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import boto3
import botocore.exceptions
import pytest
from moto import mock_aws

from helppet_recordings import (
    InMemoryRepository,
    RecordingService,
    RecordingSettings,
    RecordingStatus,
    S3Storage,
)
from helppet_recordings.testing.clock import FakeClock
from helppet_recordings.transcription import (
    AwsTranscribeTranscriber,
    PermanentTranscriptionError,
    TranscriberConfigurationError,
    TranscriptionInput,
    TranscriptionWorker,
    TransientTranscriptionError,
    get_transcriber,
)
from helppet_recordings.transcription import _aws_result as aws_result
from tests.support.audio import encode_tone
from tests.support.moto_s3 import s3v4_client
from tests.support.raw_http import RawHttpServer, http_answer
from tests.support.replay import ORIGINAL, SAME_SIZE

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_transcribe import TranscribeServiceClient

AUDIO_BUCKET = "helppet-audio-recordings"
OUTPUT_BUCKET = "helppet-transcripts"
KEY = "recordings/2024/05/01/a.m4a"
S3_URI = f"s3://{AUDIO_BUCKET}/{KEY}"
SECRET = "The patient's owner mentioned a lump."
USER = uuid.UUID("0b7c5a52-3a3e-4f0f-8a55-4c1e8f3d2a10")
TONE = encode_tone("wav", 0.5)


def result(text: str, confidences: list[float]) -> bytes:
    """A Transcribe result document."""
    items: list[dict[str, Any]] = [
        {
            "start_time": "0.0",
            "end_time": "0.5",
            "type": "pronunciation",
            "alternatives": [{"confidence": str(c), "content": f"w{i}"}],
        }
        for i, c in enumerate(confidences)
    ]
    items.append({"type": "punctuation", "alternatives": [{"confidence": "0.0", "content": "."}]})
    document = {
        "jobName": "x",
        "accountId": "123456789012",
        "status": "COMPLETED",
        "results": {"transcripts": [{"transcript": text}], "items": items},
    }
    return json.dumps(document).encode()


@attrs.define
class Aws:
    """moto clients, a movable clock and the recorded sleeps."""

    transcribe: TranscribeServiceClient
    s3: S3Client
    now: float = 0.0
    sleeps: list[float] = attrs.field(factory=list)

    def sleep(self, seconds: float) -> None:
        """Record a wait and move the clock."""
        self.sleeps.append(seconds)
        self.now += seconds

    def transcriber(self, **options: Any) -> AwsTranscribeTranscriber:
        """A transcriber on the moto clients with the fake clock."""
        options.setdefault("output_bucket", OUTPUT_BUCKET)
        options.setdefault("s3_client", self.s3)
        options.setdefault("client", self.transcribe)
        built = get_transcriber(
            "aws",
            sleep=self.sleep,
            clock=lambda: self.now,
            **options,
        )
        assert isinstance(built, AwsTranscribeTranscriber)
        return built

    def jobs(self) -> list[str]:
        """Names of every job Transcribe knows."""
        summaries = self.transcribe.list_transcription_jobs()["TranscriptionJobSummaries"]
        return [s["TranscriptionJobName"] for s in summaries]


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Aws]:
    """A moto account with the audio and output buckets."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=AUDIO_BUCKET)
        s3.create_bucket(Bucket=OUTPUT_BUCKET)
        s3.put_object(Bucket=AUDIO_BUCKET, Key=KEY, Body=b"audio")
        yield Aws(boto3.client("transcribe", region_name="us-east-1"), s3)


def audio(
    recording_id: uuid.UUID, attempt: int = 1, mime_type: str = "audio/mp4", cycle: int = 1
) -> TranscriptionInput:
    """The recording as a worker would describe it."""
    return TranscriptionInput.from_bytes(
        b"audio",
        mime_type=mime_type,
        recording_id=recording_id,
        attempt=attempt,
        cycle=cycle,
        s3_uri=S3_URI,
    )


def test_runs_a_job_on_the_object_in_place_and_parses_the_result(aws: Aws) -> None:
    """The job reads the S3 URI, polls with growing waits and returns the parsed result."""
    transcriber = aws.transcriber(cleanup=False)
    recording = uuid.uuid4()
    name = transcriber.job_name(recording, 1)
    assert name == f"helppet-{recording}-1"
    aws.s3.put_object(
        Bucket=OUTPUT_BUCKET,
        Key=transcriber.output_key(name),
        Body=result("The dog is healthy.", [0.9, 0.7]),
    )
    transcript = transcriber.transcribe(audio(recording))
    assert transcript.text == "The dog is healthy."
    assert transcript.confidence == pytest.approx(0.8)
    assert transcript.language == "en-US"
    assert transcript.service == "aws-transcribe"
    job = aws.transcribe.get_transcription_job(TranscriptionJobName=name)["TranscriptionJob"]
    assert job["Media"]["MediaFileUri"] == S3_URI
    assert job["MediaFormat"] == "m4a"
    assert aws.sleeps == [2.0, 3.0]
    assert aws.jobs() == [name]


def test_a_later_attempt_resumes_the_job_instead_of_paying_twice(aws: Aws) -> None:
    """The next attempt after a poll that timed out finds the running job and waits for it."""
    recording = uuid.uuid4()
    impatient = aws.transcriber(max_wait=1.0)
    name = impatient.job_name(recording, 3)
    with pytest.raises(TransientTranscriptionError) as caught:
        impatient.transcribe(audio(recording, attempt=1, cycle=3))
    assert caught.value.details["job_name"] == name
    assert caught.value.retry_after == 30.0
    assert aws.jobs() == [name]
    aws.s3.put_object(
        Bucket=OUTPUT_BUCKET, Key=impatient.output_key(name), Body=result("resumed", [1.0])
    )
    transcript = aws.transcriber().transcribe(audio(recording, attempt=2, cycle=3))
    assert transcript.text == "resumed"
    assert aws.jobs() == []  # cleanup deleted the one job
    listed = aws.s3.list_objects_v2(Bucket=OUTPUT_BUCKET).get("Contents", [])
    assert listed == []


def test_a_new_cycle_is_a_new_job(aws: Aws) -> None:
    """A reprocessed recording (cycle 2, attempt 1 again) gets its own job, not cycle 1's."""
    transcriber = aws.transcriber(cleanup=False)
    recording = uuid.uuid4()
    for cycle in (1, 2):
        name = transcriber.job_name(recording, cycle)
        aws.s3.put_object(
            Bucket=OUTPUT_BUCKET,
            Key=transcriber.output_key(name),
            Body=result(f"round {cycle}", []),
        )
        found = transcriber.transcribe(audio(recording, attempt=1, cycle=cycle))
        assert found.text == f"round {cycle}"
    assert sorted(aws.jobs()) == [f"helppet-{recording}-1", f"helppet-{recording}-2"]


class FailingCleanup:
    """A Transcribe client whose DeleteTranscriptionJob is refused; the rest is moto."""

    def __init__(self, client: TranscribeServiceClient) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def delete_transcription_job(self, **_params: Any) -> None:
        """Refuse, as AWS does when the role lacks the permission."""
        raise botocore.exceptions.ClientError(
            {"Error": {"Code": "AccessDeniedException", "Message": "no"}},
            "DeleteTranscriptionJob",
        )


def test_a_failed_cleanup_keeps_the_transcript_and_logs_the_job(
    aws: Aws, caplog: pytest.LogCaptureFixture
) -> None:
    """The transcript is returned, the result object still deleted; the warning names the job."""
    recording = uuid.uuid4()
    transcriber = get_transcriber(
        "aws",
        client=FailingCleanup(aws.transcribe),
        s3_client=aws.s3,
        output_bucket=OUTPUT_BUCKET,
        sleep=aws.sleep,
        clock=lambda: aws.now,
    )
    assert isinstance(transcriber, AwsTranscribeTranscriber)
    name = transcriber.job_name(recording, 1)
    aws.s3.put_object(
        Bucket=OUTPUT_BUCKET, Key=transcriber.output_key(name), Body=result(SECRET, [0.5])
    )
    with caplog.at_level("WARNING", logger="helppet_recordings.transcription"):
        transcript = transcriber.transcribe(audio(recording))
    assert transcript.text == SECRET
    assert aws.jobs() == [name]
    [record] = caplog.records
    assert name in record.getMessage()
    assert "AccessDeniedException" in record.getMessage()
    assert SECRET not in caplog.text
    # The job stays (it expires by itself); the result object holding the transcript is gone.
    assert aws.s3.list_objects_v2(Bucket=OUTPUT_BUCKET).get("KeyCount") == 0


class FailsJobs:
    """A Transcribe client whose finished jobs end FAILED, as for audio it cannot read."""

    REASON = "The media format provided does not match the detected media format."

    def __init__(self, client: TranscribeServiceClient) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def get_transcription_job(self, **params: Any) -> Any:
        """Report moto's job, FAILED with Transcribe's reason instead of COMPLETED."""
        answer = self._client.get_transcription_job(**params)
        job: dict[str, Any] = dict(answer["TranscriptionJob"])
        if job["TranscriptionJobStatus"] == "COMPLETED":
            job["TranscriptionJobStatus"] = "FAILED"
            job["FailureReason"] = self.REASON
            job.pop("Transcript", None)
        return {**answer, "TranscriptionJob": job}


def test_a_failed_job_is_permanent_and_kept_for_its_reason(aws: Aws) -> None:
    """job_failed carries Transcribe's reason; the job, which holds no transcript, stays.

    A reprocess starts a new job (a new cycle), so the failed one is only
    there for an operator to read why, until Transcribe expires it.
    """
    transcriber = aws.transcriber(client=FailsJobs(aws.transcribe))
    recording = uuid.uuid4()
    name = transcriber.job_name(recording, 1)
    with pytest.raises(PermanentTranscriptionError) as caught:
        transcriber.transcribe(audio(recording))
    assert caught.value.reason == "job_failed"
    assert caught.value.details["failure_reason"] == FailsJobs.REASON
    assert caught.value.details["job_name"] == name
    assert aws.jobs() == [name]
    assert aws.s3.list_objects_v2(Bucket=OUTPUT_BUCKET).get("KeyCount") == 0


def test_result_from_the_transcript_uri_without_an_output_bucket(aws: Aws) -> None:
    """Without an output bucket the presigned TranscriptFileUri is fetched and parsed."""
    fetched: list[str] = []

    def fetch(url: str) -> bytes:
        fetched.append(url)
        return result("from the service bucket", [0.5])

    transcriber = aws.transcriber(output_bucket=None, fetch_url=fetch, language=None)
    transcript = transcriber.transcribe(audio(uuid.uuid4()))
    assert transcript.text == "from the service bucket"
    assert transcript.language == "en-US"  # identified by the service
    (url,) = fetched
    assert url.startswith("https://") and url.endswith("asrOutput.json")


def test_malformed_result_is_permanent(aws: Aws) -> None:
    """A result file that is not Transcribe's JSON is TRANSCRIPTION_FAILED, reason bad_result."""
    transcriber = aws.transcriber()
    recording = uuid.uuid4()
    aws.s3.put_object(
        Bucket=OUTPUT_BUCKET,
        Key=transcriber.output_key(transcriber.job_name(recording, 1)),
        Body=b"{}",
    )
    with pytest.raises(PermanentTranscriptionError) as caught:
        transcriber.transcribe(audio(recording))
    assert caught.value.reason == "bad_result"


UNUSABLE_RESULTS = {
    "not JSON": SECRET.encode(),
    "not the documented shape": json.dumps({"results": {"text": SECRET}}).encode(),
    "a transcript without its text": json.dumps({"results": {"transcripts": [{}]}}).encode(),
    "too large": result(SECRET * 4, [0.5]),
}
"""Results that were read but cannot be used; each holds the transcript's text somehow."""


@pytest.mark.parametrize("body", UNUSABLE_RESULTS.values(), ids=UNUSABLE_RESULTS.keys())
def test_an_unusable_result_is_cleaned_up(
    aws: Aws, monkeypatch: pytest.MonkeyPatch, body: bytes
) -> None:
    """A result read but unusable (bad_result) leaves neither the job nor the result object.

    Both would keep the transcript (the job in Transcribe's own bucket) after
    the recording failed for good; a reprocess starts a new job anyway.
    """
    monkeypatch.setattr(aws_result, "MAX_RESULT_BYTES", len(result(SECRET, [0.5])) + 10)
    transcriber = aws.transcriber()
    recording = uuid.uuid4()
    name = transcriber.job_name(recording, 1)
    aws.s3.put_object(Bucket=OUTPUT_BUCKET, Key=transcriber.output_key(name), Body=body)
    with pytest.raises(PermanentTranscriptionError) as caught:
        transcriber.transcribe(audio(recording))
    assert caught.value.reason == "bad_result"
    assert caught.value.details["job_name"] == name
    assert aws.jobs() == []
    assert aws.s3.list_objects_v2(Bucket=OUTPUT_BUCKET).get("KeyCount") == 0


def test_an_unusable_result_from_the_transcript_uri_deletes_the_job(aws: Aws) -> None:
    """Without an output bucket, the job (whose bucket holds the result) is deleted all the same."""
    transcriber = aws.transcriber(output_bucket=None, fetch_url=lambda _url: SECRET.encode())
    with pytest.raises(PermanentTranscriptionError) as caught:
        transcriber.transcribe(audio(uuid.uuid4()))
    assert caught.value.reason == "bad_result"
    assert aws.jobs() == []


MALFORMED_ITEMS = {
    "an item that is a string": ["x"],
    "an item that is null": [None],
    "a confidence that is not a number": [
        {"type": "pronunciation", "alternatives": [{"confidence": "NaN", "content": "w"}]}
    ],
}
"""``results.items`` that do not fit the documented shape, beside a transcript that does."""


@pytest.mark.parametrize("items", MALFORMED_ITEMS.values(), ids=MALFORMED_ITEMS.keys())
def test_malformed_items_are_a_bad_result_not_a_raw_error(aws: Aws, items: list[Any]) -> None:
    """bad_result naming the item, cleaned up, quoting nothing of the transcript."""
    transcriber = aws.transcriber()
    recording = uuid.uuid4()
    name = transcriber.job_name(recording, 1)
    body = {"results": {"transcripts": [{"transcript": SECRET}], "items": items}}
    aws.s3.put_object(
        Bucket=OUTPUT_BUCKET, Key=transcriber.output_key(name), Body=json.dumps(body).encode()
    )
    with pytest.raises(PermanentTranscriptionError) as caught:
        transcriber.transcribe(audio(recording))
    assert caught.value.reason == "bad_result"
    assert caught.value.details["field"].startswith("results.items.0")
    assert SECRET not in str(caught.value.to_dict())
    assert caught.value.__cause__ is None
    assert aws.jobs() == []


def test_without_cleanup_an_unusable_result_is_left_in_place(aws: Aws) -> None:
    """cleanup=False keeps the job and the result object, usable or not, as it says."""
    transcriber = aws.transcriber(cleanup=False)
    recording = uuid.uuid4()
    name = transcriber.job_name(recording, 1)
    aws.s3.put_object(Bucket=OUTPUT_BUCKET, Key=transcriber.output_key(name), Body=b"{}")
    with pytest.raises(PermanentTranscriptionError):
        transcriber.transcribe(audio(recording))
    assert aws.jobs() == [name]
    assert aws.s3.list_objects_v2(Bucket=OUTPUT_BUCKET).get("KeyCount") == 1


CUT_OFF = {
    "short of its Content-Length": lambda body: http_answer(body[:48], declared=len(body)),
    "chunked, without its last chunk": lambda body: http_answer(body[:48], chunked=True),
}
"""A result download cut off after 48 bytes, as a network fault leaves it."""


@pytest.mark.parametrize("cut", CUT_OFF.values(), ids=CUT_OFF.keys())
def test_a_cut_off_transcript_download_is_retried_and_keeps_the_job(
    aws: Aws, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cut: Callable[[bytes], bytes]
) -> None:
    """A presigned download cut short is transient; the next attempt reads the kept job's result.

    The default HTTPS fetcher downloads from a loopback TLS server whose
    first answer stops after 48 bytes and whose second is whole.
    """
    body = result(SECRET, [0.5])
    with RawHttpServer([cut(body), http_answer(body)], tls=True, directory=tmp_path) as server:
        assert server.ca_file is not None
        monkeypatch.setenv("SSL_CERT_FILE", str(server.ca_file))
        for proxy in ("https_proxy", "HTTPS_PROXY"):
            monkeypatch.delenv(proxy, raising=False)

        def fetch(_url: str) -> bytes:
            return aws_result.fetch_https(f"{server.url}/asrOutput.json")

        transcriber = aws.transcriber(output_bucket=None, fetch_url=fetch)
        recording = uuid.uuid4()
        with pytest.raises(TransientTranscriptionError) as caught:
            transcriber.transcribe(audio(recording))
        assert SECRET not in str(caught.value.to_dict())
        assert aws.jobs() == [transcriber.job_name(recording, 1)]
        transcript = transcriber.transcribe(audio(recording, attempt=2))
    assert transcript.text == SECRET
    assert len(server.requests) == 2
    assert aws.jobs() == []


def test_a_result_object_read_short_is_retried_and_kept(aws: Aws, tmp_path: Path) -> None:
    """GetObject's body ending before its Content-Length is transient: the job and result stay.

    botocore hands back the short body without an error; the S3 client here
    talks to a loopback server that cuts the body off.
    """
    body = result(SECRET, [0.5])
    cut = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        + body[:48]
    )
    recording = uuid.uuid4()
    with RawHttpServer([cut], directory=tmp_path) as server:
        cutting_s3 = boto3.client("s3", region_name="us-east-1", endpoint_url=server.url)
        transcriber = aws.transcriber(s3_client=cutting_s3)
        name = transcriber.job_name(recording, 1)
        with pytest.raises(TransientTranscriptionError) as caught:
            transcriber.transcribe(audio(recording))
    assert caught.value.details["job_name"] == name
    assert [request.split(b" ", 1)[0] for request in server.requests] == [b"GET"]  # no delete
    assert aws.jobs() == [name]
    aws.s3.put_object(Bucket=OUTPUT_BUCKET, Key=transcriber.output_key(name), Body=body)
    assert aws.transcriber().transcribe(audio(recording, attempt=2)).text == SECRET
    assert aws.jobs() == []


def test_missing_result_object_is_transient(aws: Aws) -> None:
    """A finished job whose result is not (yet) readable is retried later: the job stays."""
    transcriber = aws.transcriber()
    recording = uuid.uuid4()
    with pytest.raises(TransientTranscriptionError):
        transcriber.transcribe(audio(recording))
    assert aws.jobs() == [transcriber.job_name(recording, 1)]


@pytest.mark.parametrize("mime_type", ["audio/aac", "audio/x-caf", "audio/3gpp", "audio/amr-wb"])
def test_formats_transcribe_cannot_read_start_no_job(aws: Aws, mime_type: str) -> None:
    """Unsupported formats are refused before any paid job starts."""
    with pytest.raises(PermanentTranscriptionError) as caught:
        aws.transcriber().transcribe(audio(uuid.uuid4(), mime_type=mime_type))
    assert caught.value.reason == "unsupported_format"
    assert aws.jobs() == []


@pytest.mark.parametrize(
    ("options", "parameter"),
    [
        ({"language": "english"}, "language"),
        ({"language": "en"}, "language"),
        ({"language": None, "language_options": ["en-US", "klingon"]}, "language_options"),
    ],
    ids=["a name", "no region", "an unknown option"],
)
def test_a_language_transcribe_does_not_know_is_refused_before_any_job(
    aws: Aws, options: dict[str, Any], parameter: str
) -> None:
    """A language code Transcribe does not list fails when the transcriber is built.

    Transcribe would refuse every job (each recording failed for good), and
    moto would run it and hand back a language no transcript may carry.
    """
    with pytest.raises(TranscriberConfigurationError) as caught:
        aws.transcriber(**options)
    assert caught.value.details["parameter"] == parameter
    assert "'en-US'" in caught.value.message
    assert aws.jobs() == []


def test_a_language_code_is_spelled_as_transcribe_does(aws: Aws) -> None:
    """``en-gb`` is Transcribe's ``en-GB``: the job asks for it and the transcript reports it."""
    transcriber = aws.transcriber(language="en-gb", language_options=["EN-us"], cleanup=False)
    assert (transcriber.language, transcriber.language_options) == ("en-GB", ["en-US"])
    recording = uuid.uuid4()
    name = transcriber.job_name(recording, 1)
    aws.s3.put_object(Bucket=OUTPUT_BUCKET, Key=transcriber.output_key(name), Body=result("", []))
    assert transcriber.transcribe(audio(recording)).language == "en-GB"
    job = aws.transcribe.get_transcription_job(TranscriptionJobName=name)["TranscriptionJob"]
    assert job["LanguageCode"] == "en-GB"


def test_audio_outside_s3_is_a_configuration_error(aws: Aws) -> None:
    """Transcribe can only read S3: a recording without an S3 URI cannot go there."""
    local = TranscriptionInput.from_bytes(b"x", mime_type="audio/mp4")
    with pytest.raises(TranscriberConfigurationError):
        aws.transcriber().transcribe(local)


def test_a_client_botocore_cannot_make_is_a_configuration_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No region anywhere botocore looks: TranscriberConfigurationError, not NoRegionError."""
    for name in ("AWS_DEFAULT_REGION", "AWS_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    with pytest.raises(TranscriberConfigurationError) as caught:
        AwsTranscribeTranscriber()
    assert caught.value.details["reason"] == "NoRegionError"
    assert isinstance(caught.value.__cause__, botocore.exceptions.NoRegionError)


def test_workers_retrying_a_slow_job_pay_for_it_once(aws: Aws) -> None:
    """A poll that timed out defers the recording; the next worker's attempt polls the same job."""
    clock = FakeClock()
    storage = S3Storage(AUDIO_BUCKET, client=s3v4_client())
    repository = InMemoryRepository()
    service = RecordingService(storage, repository, RecordingSettings(), clock=clock)
    ticket = service.initiate_upload(USER, {"filename": "visit.wav", "content_type": "audio/wav"})
    aws.s3.put_object(Bucket=AUDIO_BUCKET, Key=ticket.s3_key, Body=TONE, ContentType="audio/wav")
    service.complete_upload(USER, ticket.recording_id, {"file_size_bytes": len(TONE)})

    impatient = TranscriptionWorker(service, aws.transcriber(max_wait=1.0))
    assert impatient.run_once() == 1
    waiting = repository.get(ticket.recording_id)
    assert waiting is not None
    assert (waiting.status, waiting.processing_attempts) == (RecordingStatus.UPLOADED, 1)
    [name] = aws.jobs()
    assert name == f"helppet-{ticket.recording_id}-1"

    aws.s3.put_object(Bucket=OUTPUT_BUCKET, Key=f"transcripts/{name}.json", Body=result(SECRET, []))
    clock.advance(seconds=60)
    assert TranscriptionWorker(service, aws.transcriber()).run_once() == 1
    done = repository.get(ticket.recording_id)
    assert done is not None
    assert (done.status, done.processing_attempts) == (RecordingStatus.TRANSCRIBED, 2)
    assert done.transcript_text == SECRET
    assert aws.jobs() == []  # the one job, cleaned up after it was read


def _verified_on_s3(
    clock: FakeClock,
) -> tuple[RecordingService, InMemoryRepository, uuid.UUID, str]:
    """A service on moto's S3 with one verified WAV recording (ORIGINAL); its id and key."""
    storage = S3Storage(AUDIO_BUCKET, client=s3v4_client())
    repository = InMemoryRepository()
    service = RecordingService(storage, repository, RecordingSettings(), clock=clock)
    ticket = service.initiate_upload(USER, {"filename": "visit.wav", "content_type": "audio/wav"})
    s3 = s3v4_client()
    s3.put_object(Bucket=AUDIO_BUCKET, Key=ticket.s3_key, Body=ORIGINAL, ContentType="audio/wav")
    service.complete_upload(USER, ticket.recording_id, {"file_size_bytes": len(ORIGINAL)})
    return service, repository, ticket.recording_id, ticket.s3_key


def test_audio_changed_before_the_job_starts_no_job(aws: Aws) -> None:
    """Other audio at the key before the worker runs: no job is paid for, the recording fails."""
    service, repository, rid, key = _verified_on_s3(FakeClock())
    name = f"helppet-{rid}-1"
    aws.s3.put_object(Bucket=OUTPUT_BUCKET, Key=f"transcripts/{name}.json", Body=result(SECRET, []))
    aws.s3.put_object(Bucket=AUDIO_BUCKET, Key=key, Body=SAME_SIZE, ContentType="audio/wav")
    transcriber = aws.transcriber(cleanup=False)  # a job started would stay listed
    assert TranscriptionWorker(service, transcriber).run_once() == 1
    assert aws.jobs() == []
    failed = repository.get(rid)
    assert failed is not None
    assert failed.status is RecordingStatus.FAILED
    assert failed.processing_error is not None
    assert failed.processing_error.startswith("UPLOAD_VERIFICATION_FAILED (object_changed)")


def test_audio_changed_while_the_job_runs_discards_its_transcript(aws: Aws) -> None:
    """Transcribe reads the object itself: a change during the job throws its result away."""
    service, repository, rid, key = _verified_on_s3(FakeClock())
    name = f"helppet-{rid}-1"
    aws.s3.put_object(Bucket=OUTPUT_BUCKET, Key=f"transcripts/{name}.json", Body=result(SECRET, []))

    def replace_while_polling(seconds: float) -> None:
        aws.sleep(seconds)
        aws.s3.put_object(Bucket=AUDIO_BUCKET, Key=key, Body=SAME_SIZE, ContentType="audio/wav")

    transcriber = AwsTranscribeTranscriber(
        client=aws.transcribe,
        s3_client=aws.s3,
        output_bucket=OUTPUT_BUCKET,
        sleep=replace_while_polling,
        clock=lambda: aws.now,
    )
    assert TranscriptionWorker(service, transcriber).run_once() == 1
    assert aws.sleeps  # the job ran, and the audio changed while it did
    discarded = repository.get(rid)
    assert discarded is not None
    assert discarded.status is RecordingStatus.FAILED
    assert discarded.transcript_text is None
    assert discarded.processing_error is not None
    assert discarded.processing_error.startswith("UPLOAD_VERIFICATION_FAILED (object_changed)")
    assert "the transcript is discarded" in discarded.processing_error
