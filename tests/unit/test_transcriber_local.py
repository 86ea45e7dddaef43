"""LocalTranscriber recognises real speech offline with PocketSphinx."""

from __future__ import annotations

import io
import re
import uuid
from pathlib import Path

import pytest

from helppet_recordings.audio import AudioDecodeError, inspect_audio
from helppet_recordings.transcription import (
    LocalTranscriber,
    Transcriber,
    TranscriberConfigurationError,
    TranscriptionInput,
    get_transcriber,
    speech_sample,
)
from tests.support.audio import encode_tone

SPEECH = Path(__file__).resolve().parents[1] / "data" / "hello-doctor.flac"
SPOKEN = {"hello", "doctor", "dog", "healthy", "heart", "lungs", "sound", "good"}


@pytest.fixture(scope="module")
def transcriber() -> LocalTranscriber:
    """One transcriber for the module: loading the model takes about a second."""
    built = get_transcriber("local")
    assert isinstance(built, LocalTranscriber)
    return built


def test_transcribes_the_speech_recording(transcriber: LocalTranscriber) -> None:
    """The committed recording yields English text with words that were spoken."""
    data = SPEECH.read_bytes()
    audio = TranscriptionInput.from_bytes(data, mime_type="audio/flac", recording_id=uuid.uuid4())
    transcript = transcriber.transcribe(audio)
    words = set(re.findall(r"[a-z']+", transcript.text.lower()))
    assert words & SPOKEN, transcript.text
    assert transcript.service == "local-pocketsphinx"
    assert transcript.language == "en-US"
    assert transcript.confidence is None or 0 <= transcript.confidence <= 1
    assert inspect_audio(io.BytesIO(data)).duration_seconds == pytest.approx(6.4265625, abs=0.3)


def test_satisfies_the_protocol(transcriber: LocalTranscriber) -> None:
    """LocalTranscriber is a Transcriber."""
    assert isinstance(transcriber, Transcriber)
    assert transcriber.name == "local-pocketsphinx"


def test_a_tone_is_not_speech(transcriber: LocalTranscriber) -> None:
    """A pure tone gives no confident words; its text has at most a few."""
    audio = TranscriptionInput.from_bytes(encode_tone("wav", 1.5), mime_type="audio/wav")
    transcript = transcriber.transcribe(audio)
    assert len(transcript.text.split()) <= 4


def test_undecodable_audio_raises(transcriber: LocalTranscriber) -> None:
    """Garbage is AUDIO_UNDECODABLE, for the worker to mark the recording failed."""
    audio = TranscriptionInput.from_bytes(b"\0" * 1000, mime_type="audio/flac")
    with pytest.raises(AudioDecodeError):
        transcriber.transcribe(audio)


def test_packaged_sample_is_the_committed_recording() -> None:
    """speech_sample() ships the same bytes as tests/data, with its text and length."""
    sample = speech_sample()
    assert sample.data == SPEECH.read_bytes()
    assert sample.duration_seconds == pytest.approx(6.4265625)
    assert "dog is healthy" in sample.text


def test_bad_model_paths_are_a_configuration_error() -> None:
    """Decoder options pointing at no model fail when the transcriber is built."""
    with pytest.raises(TranscriberConfigurationError):
        LocalTranscriber(decoder_options={"hmm": "/nonexistent/model"})


def test_a_sample_rate_among_the_decoder_options_is_a_configuration_error() -> None:
    """A chosen samprate (audio is always resampled to 16 kHz) is a clear error, no TypeError."""
    with pytest.raises(TranscriberConfigurationError, match="samprate"):
        LocalTranscriber(decoder_options={"samprate": 8000})


def test_a_language_that_is_no_tag_is_refused_when_built() -> None:
    """language="english" fails at once, not after the whole file was recognised."""
    with pytest.raises(TranscriberConfigurationError) as caught:
        get_transcriber("local", language="english")
    assert caught.value.details["parameter"] == "language"
    assert "'en-US'" in caught.value.message
