"""OpenAITranscriber through the real openai SDK against an in-process HTTP transport.

The transport answers as the service documents: JSON transcriptions, 429 with
Retry-After, 5xx, 4xx refusals. Requests are parsed as the service would: the
multipart body's fields and file.
"""

from __future__ import annotations

import io
import itertools
import json
import logging
import os
import uuid
import wave
from collections.abc import Callable
from typing import Any

import attrs
import av
import httpx2
import openai
import pytest

from helppet_recordings import (
    InMemoryRepository,
    InMemoryStorage,
    RecordingService,
    RecordingSettings,
    RecordingStatus,
)
from helppet_recordings.transcription import (
    OpenAITranscriber,
    PermanentTranscriptionError,
    TranscriberConfigurationError,
    TranscriptionInput,
    TranscriptionWorker,
    TransientTranscriptionError,
    get_transcriber,
)
from helppet_recordings.transcription.openai import OPENAI_MAX_REQUEST_BYTES
from tests.support.audio import encode_tone, silence, tone

RATE = 16000


@attrs.define
class Request:
    """One transcription request as the service received it."""

    size: int
    fields: dict[str, str]
    filename: str
    content_type: str
    file: bytes


def _parse(request: httpx2.Request) -> Request:
    """Split a multipart/form-data body into its fields and its file."""
    body = request.read()
    boundary = request.headers["content-type"].split("boundary=", 1)[1].encode()
    fields: dict[str, str] = {}
    filename = content_type = ""
    file = b""
    for part in body.split(b"--" + boundary)[1:-1]:
        head, _, content = part[2:-2].partition(b"\r\n\r\n")
        headers = head.decode()
        name = headers.split('name="', 1)[1].split('"', 1)[0]
        if 'filename="' in headers:
            filename = headers.split('filename="', 1)[1].split('"', 1)[0]
            content_type = headers.split("Content-Type: ", 1)[1].split("\r\n", 1)[0].strip()
            file = content
        else:
            fields[name] = content.decode()
    return Request(len(body), fields, filename, content_type, file)


Answer = Callable[[Request, int], httpx2.Response]


@attrs.define
class Service:
    """A fake endpoint: records requests and answers with ``answer(request, index)``."""

    answer: Answer
    requests: list[Request] = attrs.field(factory=list)
    sleeps: list[float] = attrs.field(factory=list)

    def handle(self, request: httpx2.Request) -> httpx2.Response:
        """Answer one HTTP request."""
        assert request.url.path == "/v1/audio/transcriptions"
        assert request.headers["authorization"] == "Bearer test-key"
        parsed = _parse(request)
        self.requests.append(parsed)
        return self.answer(parsed, len(self.requests) - 1)

    def transcriber(self, **options: Any) -> OpenAITranscriber:
        """An OpenAITranscriber whose SDK client talks to this fake, with a recorded sleep."""
        client = openai.OpenAI(
            api_key="test-key",
            http_client=httpx2.Client(transport=httpx2.MockTransport(self.handle)),
        )
        built = get_transcriber("openai", client=client, sleep=self.sleeps.append, **options)
        assert isinstance(built, OpenAITranscriber)
        return built


def verbose(text: str, *, logprob: float = -0.1, seconds: float = 1.5) -> httpx2.Response:
    """A whisper-1 ``verbose_json`` answer."""
    return httpx2.Response(
        200,
        json={
            "task": "transcribe",
            "language": "english",
            "duration": seconds,
            "text": text,
            "segments": [
                {
                    "id": 0,
                    "seek": 0,
                    "start": 0.0,
                    "end": seconds,
                    "text": text,
                    "tokens": [],
                    "temperature": 0.0,
                    "avg_logprob": logprob,
                    "compression_ratio": 1.0,
                    "no_speech_prob": 0.01,
                },
            ],
        },
    )


def error(status: int, code: str, headers: dict[str, str] | None = None) -> httpx2.Response:
    """An error answer in the service's JSON shape."""
    body = {"error": {"message": "refused", "type": "invalid_request_error", "code": code}}
    return httpx2.Response(status, json=body, headers=headers or {})


@pytest.fixture(scope="module")
def m4a() -> bytes:
    """A short M4A, a format the service reads as it is."""
    return encode_tone("m4a", 1.5)


def test_small_supported_audio_is_sent_as_it_is(m4a: bytes) -> None:
    """One request carries the original bytes, a neutral file name and the model."""
    service = Service(lambda request, index: verbose("The dog is healthy."))
    transcript = service.transcriber().transcribe(
        TranscriptionInput.from_bytes(m4a, mime_type="audio/x-m4a")
    )
    assert transcript.text == "The dog is healthy."
    assert transcript.language == "en"
    assert transcript.service == "openai"
    assert transcript.confidence == pytest.approx(0.9048, abs=1e-3)
    (request,) = service.requests
    assert request.file == m4a
    assert request.filename == "audio.m4a"
    assert request.fields["model"] == "whisper-1"
    assert request.fields["response_format"] == "verbose_json"
    assert service.sleeps == []


def test_unsupported_formats_are_reencoded_to_flac() -> None:
    """AMR is decoded and sent as 16 kHz mono FLAC."""
    service = Service(lambda request, index: verbose("hello"))
    amr = encode_tone("amr", 1.5)
    service.transcriber(language="en-US").transcribe(
        TranscriptionInput.from_bytes(amr, mime_type="audio/amr")
    )
    (request,) = service.requests
    assert request.filename == "audio.flac"
    assert request.content_type == "audio/flac"
    assert request.fields["language"] == "en"
    with av.open(io.BytesIO(request.file)) as container:
        stream = container.streams.audio[0]
        assert (stream.sample_rate, stream.channels) == (RATE, 1)


def test_gpt4o_models_report_token_probabilities(m4a: bytes) -> None:
    """gpt-4o-transcribe answers plain JSON with logprobs; the language option is reported."""

    def answer(request: Request, index: int) -> httpx2.Response:
        assert request.fields["response_format"] == "json"
        assert request.fields["include[]"] == "logprobs"
        return httpx2.Response(
            200,
            json={"text": "ok", "logprobs": [{"token": "ok", "logprob": -0.5, "bytes": [111]}]},
        )

    service = Service(answer)
    transcript = service.transcriber(model="gpt-4o-transcribe", language="en-GB").transcribe(
        TranscriptionInput.from_bytes(m4a, mime_type="audio/mp4")
    )
    assert transcript.confidence == pytest.approx(0.6065, abs=1e-3)
    assert transcript.language == "en-GB"


@pytest.mark.parametrize(
    "headers", [{"retry-after": "7"}, {"retry-after-ms": "7000"}, {"Retry-After": "7.0"}]
)
def test_429_waits_what_the_service_asks_then_succeeds(m4a: bytes, headers: dict[str, str]) -> None:
    """A 429 with Retry-After is retried after exactly that wait, through the injected sleep."""

    def answer(request: Request, index: int) -> httpx2.Response:
        if index == 0:
            return error(429, "rate_limit_exceeded", headers)
        return verbose("after the wait")

    service = Service(answer)
    transcript = service.transcriber().transcribe(
        TranscriptionInput.from_bytes(m4a, mime_type="audio/mp4")
    )
    assert transcript.text == "after the wait"
    assert service.sleeps == [7.0]
    assert len(service.requests) == 2


def test_500s_back_off_then_raise_transient(m4a: bytes) -> None:
    """Server errors are retried with growing waits, then left to the worker as transient."""
    service = Service(lambda request, index: error(500, "server_error"))
    with pytest.raises(TransientTranscriptionError) as caught:
        service.transcriber(max_retries=3).transcribe(
            TranscriptionInput.from_bytes(m4a, mime_type="audio/mp4")
        )
    assert len(service.requests) == 4
    assert len(service.sleeps) == 3
    assert all(0 < wait <= 31 for wait in service.sleeps)
    assert caught.value.retry_after is None
    assert caught.value.details["status"] == 500
    assert not isinstance(caught.value, TranscriberConfigurationError)


def test_a_long_retry_after_goes_back_to_the_worker(m4a: bytes) -> None:
    """A Retry-After beyond max_retry_wait is not slept here: the error carries it."""
    service = Service(lambda request, index: error(503, "overloaded", {"retry-after": "600"}))
    with pytest.raises(TransientTranscriptionError) as caught:
        service.transcriber(max_retry_wait=60).transcribe(
            TranscriptionInput.from_bytes(m4a, mime_type="audio/mp4")
        )
    assert caught.value.retry_after == 600
    assert service.sleeps == []
    assert len(service.requests) == 1


def test_a_400_refusal_is_permanent_and_not_retried(m4a: bytes) -> None:
    """The service refusing the audio is TRANSCRIPTION_FAILED at once."""
    service = Service(lambda request, index: error(400, "invalid_value"))
    with pytest.raises(PermanentTranscriptionError) as caught:
        service.transcriber().transcribe(TranscriptionInput.from_bytes(m4a, mime_type="audio/mp4"))
    assert caught.value.reason == "refused"
    assert caught.value.details["service_code"] == "invalid_value"
    assert caught.value.http_status == 422
    assert len(service.requests) == 1


LANGUAGE_REFUSALS = {
    "OpenAI's answer": {
        "message": "Invalid language 'eng'. Language parameter must be specified in "
        "ISO-639-1 format.",
        "type": "invalid_request_error",
        "param": "language",
        "code": "invalid_language_format",
    },
    "a compatible server's, without param": {
        "message": "Unsupported language: 'eng'.",
        "type": "BadRequestError",
        "param": None,
        "code": 400,
    },
    "unquoted, with a code": {
        "message": "Language eng is not supported by this model",
        "param": None,
        "code": "unsupported_language",
    },
}
"""400 answers refusing a language of valid form that the service does not know."""


@pytest.mark.parametrize("refusal", LANGUAGE_REFUSALS.values(), ids=LANGUAGE_REFUSALS.keys())
def test_a_language_the_service_does_not_know_is_a_configuration_error(
    m4a: bytes, refusal: dict[str, Any]
) -> None:
    """``eng`` has a tag's form, but the service refuses it: the deployment's fault, not retried."""
    service = Service(lambda request, index: httpx2.Response(400, json={"error": refusal}))
    with pytest.raises(TranscriberConfigurationError) as caught:
        service.transcriber(language="eng").transcribe(
            TranscriptionInput.from_bytes(m4a, mime_type="audio/mp4")
        )
    assert caught.value.details["parameter"] == "language"
    assert caught.value.details["status"] == 400
    assert "'eng'" in caught.value.message
    assert [request.fields["language"] for request in service.requests] == ["eng"]
    assert service.sleeps == []


def test_a_400_about_the_audio_is_still_a_refusal_when_a_language_is_set(m4a: bytes) -> None:
    """With a language configured, a 400 that does not name it still refuses the audio."""
    service = Service(lambda request, index: error(400, "invalid_value"))
    with pytest.raises(PermanentTranscriptionError) as caught:
        service.transcriber(language="en").transcribe(
            TranscriptionInput.from_bytes(m4a, mime_type="audio/mp4")
        )
    assert caught.value.reason == "refused"


AUDIO_LANGUAGE_REFUSALS = {
    "undetected": {"message": "The audio's language could not be detected.", "param": None},
    "a detection code": {
        "message": "Could not transcribe the audio",
        "param": None,
        "code": "language_detection_failed",
    },
    "another language detected": {
        "message": "Detected language 'de' differs from the requested 'en'",
        "param": None,
    },
    "the code inside a word": {"message": "Unsupported language in ten-second clip", "param": None},
}
"""400 answers that mention languages but refuse this recording's audio, not the setting."""


@pytest.mark.parametrize(
    "refusal", AUDIO_LANGUAGE_REFUSALS.values(), ids=AUDIO_LANGUAGE_REFUSALS.keys()
)
def test_a_400_about_the_audios_language_refuses_that_recording(
    m4a: bytes, refusal: dict[str, Any]
) -> None:
    """Not the configured language refused: the audio is, alone.

    Taken for a configuration error, it would stop the worker for every recording.
    """
    service = Service(lambda request, index: httpx2.Response(400, json={"error": refusal}))
    with pytest.raises(PermanentTranscriptionError) as caught:
        service.transcriber(language="en").transcribe(
            TranscriptionInput.from_bytes(m4a, mime_type="audio/mp4")
        )
    assert caught.value.reason == "refused"


def test_the_worker_keeps_recordings_waiting_on_a_language_the_service_refuses(
    m4a: bytes,
) -> None:
    """The recording is not failed: it waits (uploaded) and the worker stops until it is fixed."""
    refusal = LANGUAGE_REFUSALS["OpenAI's answer"]
    service = Service(lambda request, index: httpx2.Response(400, json={"error": refusal}))
    storage = InMemoryStorage("helppet-audio-recordings")
    recordings = RecordingService(
        storage, InMemoryRepository(), RecordingSettings(max_file_size=1_000_000)
    )
    user = uuid.uuid4()
    ticket = recordings.initiate_upload(
        user, {"filename": "visit.m4a", "content_type": "audio/mp4"}
    )
    storage.put_object(ticket.s3_key, m4a, content_type="audio/mp4")
    recordings.complete_upload(user, ticket.recording_id, {"file_size_bytes": len(m4a)})
    worker = TranscriptionWorker(recordings, service.transcriber(language="eng"))
    with pytest.raises(TranscriberConfigurationError):
        worker.run_once()
    waiting = recordings.get_recording(user, ticket.recording_id)
    assert waiting.status is RecordingStatus.UPLOADED
    assert waiting.processing_error is not None
    assert waiting.processing_error.startswith("TRANSCRIPTION_UNAVAILABLE")
    assert len(service.requests) == 1


@pytest.mark.parametrize(
    ("status", "code"),
    [(401, "invalid_api_key"), (404, "model_not_found"), (429, "insufficient_quota")],
)
def test_credentials_model_and_quota_are_configuration_errors(
    m4a: bytes, status: int, code: str
) -> None:
    """Problems an operator must fix are not retried and do not blame the recording."""
    service = Service(lambda request, index: error(status, code))
    with pytest.raises(TranscriberConfigurationError):
        service.transcriber().transcribe(TranscriptionInput.from_bytes(m4a, mime_type="audio/mp4"))
    assert len(service.requests) == 1
    assert service.sleeps == []


def test_connection_failures_are_transient(m4a: bytes) -> None:
    """A transport that cannot connect is retried, then transient."""

    def refuse(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("refused", request=request)

    client = openai.OpenAI(
        api_key="test-key", http_client=httpx2.Client(transport=httpx2.MockTransport(refuse))
    )
    sleeps: list[float] = []
    transcriber = OpenAITranscriber(client=client, max_retries=1, sleep=sleeps.append)
    with pytest.raises(TransientTranscriptionError):
        transcriber.transcribe(TranscriptionInput.from_bytes(m4a, mime_type="audio/mp4"))
    assert len(sleeps) == 1


@pytest.mark.parametrize("language", ["english", "en_US", "en-", "e"])
def test_a_language_that_is_no_tag_is_refused_before_any_request(language: str) -> None:
    """A wrong language fails when the transcriber is built, not after each paid request."""
    service = Service(lambda request, index: verbose("hello"))
    with pytest.raises(TranscriberConfigurationError) as caught:
        service.transcriber(language=language)
    assert caught.value.details["parameter"] == "language"
    assert "'en-US'" in caught.value.message
    assert service.requests == []


def test_missing_api_key_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without OPENAI_API_KEY or a client, building the transcriber says what to set."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(TranscriberConfigurationError, match="OPENAI_API_KEY"):
        OpenAITranscriber()


def _noise_with_pauses(total: float, pauses: list[float], pause_length: float) -> bytes:
    """Full-scale noise (FLAC cannot shrink it) with digital silence centred on ``pauses``."""
    pcm = bytearray(os.urandom(round(total * RATE) * 2))
    for centre in pauses:
        start = round((centre - pause_length / 2) * RATE) * 2
        pcm[start : start + round(pause_length * RATE) * 2] = silence(pause_length, RATE)
    return bytes(pcm)


def _wav(pcm: bytes) -> bytes:
    output = io.BytesIO()
    with wave.open(output, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(RATE)
        writer.writeframes(pcm)
    return output.getvalue()


def _decode(data: bytes) -> bytes:
    with av.open(io.BytesIO(data), mode="r") as container:
        return b"".join(bytes(f.planes[0])[: f.samples * 2] for f in container.decode(audio=0))


def test_audio_over_25_mib_is_cut_at_pauses_into_requests_under_the_limit() -> None:
    """A 54 MB WAV goes in three requests under 25 MiB, cut inside the pauses, joined in order."""
    probe = Service(lambda request, index: verbose("x")).transcriber()
    longest = probe.max_chunk_seconds
    pause = 2.0
    first = longest - 10
    second = first + longest - 10
    total = second + 300
    pcm = _noise_with_pauses(total, [first, second], pause)
    wav = _wav(pcm)
    assert len(wav) > OPENAI_MAX_REQUEST_BYTES

    received: list[bytes] = []

    def answer(request: Request, index: int) -> httpx2.Response:
        piece = _decode(request.file)
        received.append(piece)
        return verbose(f"part{index} {len(piece) // (2 * RATE)}s", seconds=len(piece) / (2 * RATE))

    service = Service(answer)
    transcript = service.transcriber().transcribe(
        TranscriptionInput.from_bytes(wav, mime_type="audio/wav")
    )
    assert len(service.requests) == 3
    assert all(request.size < OPENAI_MAX_REQUEST_BYTES for request in service.requests)
    assert all(request.filename == "audio.flac" for request in service.requests)
    assert b"".join(received) == pcm
    boundaries = [len(received[0]) / (2 * RATE), (len(received[0]) + len(received[1])) / (2 * RATE)]
    for boundary, centre in zip(boundaries, [first, second], strict=True):
        assert centre - pause / 2 <= boundary <= centre + pause / 2
    for before, after in itertools.pairwise(received):
        assert before.endswith(b"\0" * 3200)
        assert after.startswith(b"\0" * 3200)
    assert transcript.text == " ".join(
        f"part{i} {len(piece) // (2 * RATE)}s" for i, piece in enumerate(received)
    )
    assert "prompt" not in service.requests[0].fields
    assert service.requests[1].fields["prompt"].endswith(f"part0 {len(received[0]) // (2 * RATE)}s")


def test_gpt4o_duration_cap_cuts_long_audio() -> None:
    """gpt-4o models take at most about 23 minutes: a smaller file that is longer is cut."""
    service = Service(lambda request, index: httpx2.Response(200, json={"text": f"p{index}"}))
    transcriber = service.transcriber(
        model="gpt-4o-mini-transcribe", chunk_format="mp3", max_chunk_seconds=4
    )
    assert transcriber.max_chunk_seconds == 4
    flac = encode_tone("flac", 10.0)
    transcript = transcriber.transcribe(TranscriptionInput.from_bytes(flac, mime_type="audio/flac"))
    assert transcript.text == "p0 p1 p2"
    assert [r.filename for r in service.requests] == ["audio.mp3"] * 3
    assert json.dumps(transcript.confidence) == "null"


@pytest.mark.parametrize(
    "answer",
    [
        httpx2.Response(200, text="<html>gateway</html>", headers={"content-type": "text/html"}),
        httpx2.Response(200, text="The dog is fine", headers={"content-type": "text/plain"}),
        httpx2.Response(200, json={}),
        httpx2.Response(200, json={"text": None}),
        httpx2.Response(200, text="{not json", headers={"content-type": "application/json"}),
    ],
    ids=["html", "plain-text", "empty-object", "null-text", "malformed-json"],
)
def test_an_answer_without_a_transcript_is_retried_not_stored_empty(
    m4a: bytes, answer: httpx2.Response
) -> None:
    """A 200 that holds no transcript is transient: retried here, then left to the worker."""
    service = Service(lambda request, index: answer)
    with pytest.raises(TransientTranscriptionError):
        service.transcriber(max_retries=2).transcribe(
            TranscriptionInput.from_bytes(m4a, mime_type="audio/mp4")
        )
    assert len(service.requests) == 3


SECRET = "The patient's owner mentioned a lump."


def _segment(**fields: Any) -> dict[str, Any]:
    """A ``verbose_json`` segment of the transcript, with ``fields`` replaced."""
    segment: dict[str, Any] = {"id": 0, "start": 0.0, "end": 1.5, "text": SECRET}
    segment["avg_logprob"] = -0.1
    segment.update(fields)
    return segment


MALFORMED_ANSWERS: dict[str, tuple[dict[str, Any], str]] = {
    "a language that is no string": ({"text": SECRET, "language": 5}, "language"),
    "a duration that is no number": ({"text": SECRET, "duration": "long"}, "duration"),
}
"""Answers that hold a transcript but not in the documented shape (OpenAI-compatible servers)."""

MALFORMED_SCORES: dict[str, tuple[dict[str, Any], str]] = {
    "avg_logprob not a number": (
        {"text": SECRET, "segments": [_segment(avg_logprob="n/a")]},
        "segments.0.avg_logprob",
    ),
    "avg_logprob of a wrong type": (
        {"text": SECRET, "segments": [_segment(avg_logprob={"mean": -0.1})]},
        "segments.0.avg_logprob",
    ),
    "a scored segment without its end": (
        {"text": SECRET, "segments": [_segment(), _segment(end=None)]},
        "segments.1",
    ),
    "a segment that is no object": ({"text": SECRET, "segments": [SECRET]}, "segments.0"),
    "a token logprob not a number": (
        {"text": SECRET, "logprobs": [{"token": SECRET, "logprob": "n/a"}]},
        "logprobs.0.logprob",
    ),
}
"""Good answers whose scores are not in the documented shape (OpenAI-compatible servers)."""


@pytest.mark.parametrize(("body", "field"), MALFORMED_SCORES.values(), ids=MALFORMED_SCORES.keys())
def test_malformed_scores_cost_the_confidence_not_the_transcript(
    m4a: bytes, body: dict[str, Any], field: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The paid transcript is kept without a confidence; the log names the field, no value."""
    service = Service(lambda request, index: httpx2.Response(200, json=body))
    with caplog.at_level(logging.DEBUG, "helppet_recordings"):
        transcript = service.transcriber().transcribe(
            TranscriptionInput.from_bytes(m4a, mime_type="audio/mp4")
        )
    assert (transcript.text, transcript.confidence) == (SECRET, None)
    assert len(service.requests) == 1
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert field in warnings[0].getMessage()
    for record in caplog.records:
        assert SECRET not in record.getMessage()
        assert "n/a" not in record.getMessage()


@pytest.mark.parametrize(
    ("body", "field"), MALFORMED_ANSWERS.values(), ids=MALFORMED_ANSWERS.keys()
)
def test_a_malformed_answer_is_a_bad_result_not_a_raw_error(
    m4a: bytes, body: dict[str, Any], field: str
) -> None:
    """TRANSCRIPTION_FAILED (bad_result) naming the field, not retried, quoting no value."""
    service = Service(lambda request, index: httpx2.Response(200, json=body))
    with pytest.raises(PermanentTranscriptionError) as caught:
        service.transcriber().transcribe(TranscriptionInput.from_bytes(m4a, mime_type="audio/mp4"))
    assert caught.value.reason == "bad_result"
    assert caught.value.details["field"] == field
    assert len(service.requests) == 1
    assert SECRET not in str(caught.value.to_dict())
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


def test_a_log_probability_above_zero_is_a_certainty_not_an_overflow(m4a: bytes) -> None:
    """avg_logprob 1000 (a server's rounding gone wild) is confidence 1, not an OverflowError."""
    answer = {"text": "ok", "segments": [_segment(avg_logprob=1000.0)]}
    service = Service(lambda request, index: httpx2.Response(200, json=answer))
    transcript = service.transcriber().transcribe(
        TranscriptionInput.from_bytes(m4a, mime_type="audio/mp4")
    )
    assert transcript.confidence == 1.0


def test_an_empty_transcript_is_a_transcript(m4a: bytes) -> None:
    """Silence transcribes to "" in the service's JSON: that is an answer, kept as it is."""
    service = Service(lambda request, index: verbose(""))
    transcript = service.transcriber().transcribe(
        TranscriptionInput.from_bytes(m4a, mime_type="audio/mp4")
    )
    assert transcript.text == ""
    assert len(service.requests) == 1


def test_a_long_recording_never_ends_in_a_piece_the_service_refuses() -> None:
    """A pause just before the limit would leave 50 ms, which the service refuses as too short."""
    pcm = tone(9.95, RATE) + silence(0.05, RATE) + tone(0.05, RATE)
    received: list[int] = []

    def answer(request: Request, index: int) -> httpx2.Response:
        samples = len(_decode(request.file)) // 2
        received.append(samples)
        if samples < RATE // 10:
            return error(400, "audio_too_short")
        return verbose(f"part{index}")

    service = Service(answer)
    transcript = service.transcriber(max_chunk_seconds=10).transcribe(
        TranscriptionInput.from_bytes(_wav(pcm), mime_type="audio/wav")
    )
    assert sum(received) * 2 == len(pcm)
    assert len(received) == 2
    assert min(received) >= RATE
    assert transcript.text == "part0 part1"
