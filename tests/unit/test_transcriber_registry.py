"""The transcription package: lazy registry, install hints, value types and errors."""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from helppet_recordings import transcription
from helppet_recordings.errors import MissingDependencyError, RecordingError, ValidationError
from helppet_recordings.transcription import (
    PermanentTranscriptionError,
    TranscriberConfigurationError,
    Transcript,
    TranscriptionInput,
    TransientTranscriptionError,
    available_transcribers,
    get_transcriber,
    register_transcriber,
)


def test_all_is_complete_and_importable() -> None:
    """Every name in __all__ resolves, and the contract's names are there."""
    for name in transcription.__all__:
        assert getattr(transcription, name) is not None
    assert {
        "Transcriber",
        "Transcript",
        "LocalTranscriber",
        "OpenAITranscriber",
        "AwsTranscribeTranscriber",
    } <= set(transcription.__all__)
    assert sorted(transcription.__all__) == transcription.__all__
    assert dir(transcription) == sorted(transcription.__all__)
    with pytest.raises(AttributeError):
        _ = transcription.NoSuchThing


def test_bundled_names() -> None:
    """local, openai and aws are registered."""
    assert {"local", "openai", "aws"} <= set(available_transcribers())


def test_unknown_name_is_a_validation_error() -> None:
    """An unknown transcriber name is VALIDATION_ERROR listing the choices."""
    with pytest.raises(ValidationError) as caught:
        get_transcriber("whisper-on-a-toaster")
    assert "local" in caught.value.message


@pytest.mark.parametrize(
    ("name", "module", "library", "extra"),
    [
        ("local", "helppet_recordings.transcription.local", "pocketsphinx", "local-transcriber"),
        ("openai", "helppet_recordings.transcription.openai", "openai", "openai"),
        ("aws", "helppet_recordings.transcription.aws", "boto3", "aws"),
    ],
)
def test_missing_library_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, name: str, module: str, library: str, extra: str
) -> None:
    """Without its library a transcriber raises MissingDependencyError with the pip extra."""
    monkeypatch.setitem(sys.modules, library, None)
    monkeypatch.delitem(sys.modules, module, raising=False)
    monkeypatch.setattr(
        "helppet_recordings.transcription.registry._registry",
        dict(transcription.registry.BUILTIN_TRANSCRIBERS),
    )
    with pytest.raises(MissingDependencyError) as caught:
        get_transcriber(name)
    assert caught.value.details == {"package": library, "extra": extra}
    assert f"helppet-recordings[{extra}]" in caught.value.message
    assert isinstance(caught.value, ImportError)


def test_backends_are_not_imported_with_the_package() -> None:
    """Importing the package imports no backend library."""
    code = (
        "import sys, helppet_recordings.transcription;"
        "print(sorted(m for m in ('pocketsphinx','openai','boto3','av') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_register_a_custom_transcriber(monkeypatch: pytest.MonkeyPatch) -> None:
    """A callable or a module:attribute path can be registered under a name."""

    class Echo:
        name = "echo"

        def __init__(self, text: str) -> None:
            self.text = text

        def transcribe(self, audio: TranscriptionInput) -> Transcript:
            return Transcript(self.text, service=self.name)

    monkeypatch.setattr("helppet_recordings.transcription.registry._registry", {})
    register_transcriber("echo", Echo)
    built = get_transcriber("echo", text="hi")
    assert isinstance(built, transcription.Transcriber)
    audio = TranscriptionInput.from_bytes(b"x", mime_type="audio/wav")
    assert built.transcribe(audio).text == "hi"
    register_transcriber("sample", "helppet_recordings.transcription.samples:speech_sample")
    assert available_transcribers() == ["echo", "sample"]
    with pytest.raises(ValidationError):
        register_transcriber("", Echo)


def test_transcript_validates_and_hides_its_text() -> None:
    """Confidence, language and service are checked; repr never shows the text."""
    transcript = Transcript("the dog is healthy", 0.9, "en-US", service="openai")
    assert "healthy" not in repr(transcript)
    for bad in ({"confidence": 1.5}, {"confidence": float("nan")}, {"language": "english!"}):
        with pytest.raises(ValueError):  # noqa: PT011 - attrs validators raise ValueError
            Transcript("x", service="s", **bad)
    with pytest.raises(ValueError, match="service"):
        Transcript("x", service="")


def test_transcription_input_opens_fresh_streams() -> None:
    """Each open() starts at the beginning; attempts start at 1."""
    audio = TranscriptionInput.from_bytes(b"abc", mime_type="audio/wav", attempt=2)
    first = audio.open()
    first.read()
    assert audio.open().read() == b"abc"
    assert audio.size == 3
    assert audio.duration_seconds is None
    assert isinstance(audio.recording_id, uuid.UUID)
    with pytest.raises(ValueError, match="attempt"):
        TranscriptionInput.from_bytes(b"abc", mime_type="audio/wav", attempt=0)


def test_error_tree() -> None:
    """Codes, statuses, reasons and retry_after are as documented."""
    transient = TransientTranscriptionError(retry_after=12.5)
    assert (transient.error_code, transient.http_status, transient.retry_after) == (
        "TRANSCRIPTION_UNAVAILABLE",
        503,
        12.5,
    )
    assert TransientTranscriptionError().retry_after is None
    configuration = TranscriberConfigurationError()
    assert isinstance(configuration, TransientTranscriptionError)
    permanent = PermanentTranscriptionError(reason="refused")
    assert (permanent.error_code, permanent.http_status, permanent.reason) == (
        "TRANSCRIPTION_FAILED",
        422,
        "refused",
    )
    assert all(isinstance(e, RecordingError) for e in (transient, configuration, permanent))
    assert permanent.to_dict()["details"] == {"reason": "refused"}


def test_documented_python_compiles() -> None:
    """Every Python block in docs/transcription.md is valid Python."""
    doc = Path(__file__).resolve().parents[2] / "docs" / "transcription.md"
    blocks = re.findall(r"```python\n(.*?)```", doc.read_text(encoding="utf-8"), flags=re.DOTALL)
    assert len(blocks) >= 2
    for block in blocks:
        compile(block, str(doc), "exec")
