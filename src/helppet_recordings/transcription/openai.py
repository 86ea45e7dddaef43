"""OpenAITranscriber: OpenAI's speech-to-text API through the ``openai`` SDK (extra ``openai``)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, ClassVar, Final

import attrs
import pydantic

from helppet_recordings import policy
from helppet_recordings.audio.encode import ENCODINGS, encode_pcm
from helppet_recordings.audio.probe import decode_pcm, inspect_audio
from helppet_recordings.errors import MissingDependencyError, UnsupportedContentTypeError
from helppet_recordings.transcription._answers import OpenAIAnswer, bad_result, openai_confidence
from helppet_recordings.transcription._languages import configured_language, language_tag
from helppet_recordings.transcription._openai_errors import status_error
from helppet_recordings.transcription._options import positive_seconds, whole_number
from helppet_recordings.transcription.base import Transcript, TranscriptionInput
from helppet_recordings.transcription.chunking import choose_cut, split_at_silences
from helppet_recordings.transcription.errors import (
    TranscriberConfigurationError,
    TransientTranscriptionError,
)

try:
    import openai
    import tenacity
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingDependencyError(exc.name or "openai", "openai") from exc

if TYPE_CHECKING:
    from tenacity import RetryCallState

__all__ = ["DEFAULT_MODEL", "OPENAI_MAX_REQUEST_BYTES", "OpenAITranscriber"]

DEFAULT_MODEL: Final = "whisper-1"
"""The default model: it reports the language and segment probabilities, and takes any length."""

OPENAI_MAX_REQUEST_BYTES: Final = 25 * 1024 * 1024
"""The service's limit on one transcription request (26,214,400 bytes)."""

SAMPLE_RATE: Final = 16_000
_BYTES_PER_SECOND: Final = SAMPLE_RATE * 2
# Room for the multipart framing and the form fields (model, prompt, ...).
_REQUEST_OVERHEAD: Final = 64 * 1024
# FLAC falls back to verbatim frames on noise; a frame header per 4096 samples
# keeps the worst case far below 1 % over raw PCM (WAV is raw PCM plus 44 bytes).
_ENCODED_OVER_PCM: Final = 1.01
# gpt-4o transcription models refuse audio over 1400 s; keep a margin.
_GPT4O_MAX_SECONDS: Final = 1380.0
_DEFAULT_SEARCH_SECONDS: Final = 30.0
_PROMPT_TAIL: Final = 200
_MIN_PIECE_SECONDS: Final = 1.0  # the service refuses audio under 0.1 s; a sliver helps no one
# Formats the service takes as they are, by canonical MIME type, with the extension it reads.
_DIRECT: Final = {
    "audio/flac": "flac",
    "audio/mp4": "m4a",
    "audio/mpeg": "mp3",
    "audio/ogg": "ogg",
    "audio/wav": "wav",
    "audio/webm": "webm",
}
_MIME: Final = {"flac": "audio/flac", "wav": "audio/wav", "mp3": "audio/mpeg"}


@attrs.frozen
class _Part:
    text: str
    seconds: float | None
    confidence: float | None
    language: str | None


class OpenAITranscriber:
    """Transcribes with OpenAI's ``audio/transcriptions`` endpoint.

    - ``model``: ``whisper-1`` (default; reports the language and
      per-segment probabilities, no length limit) or ``gpt-4o-transcribe`` /
      ``gpt-4o-mini-transcribe`` (more accurate or cheaper; at most about
      23 minutes per request, so longer audio is cut to fit).
    - ``language``: a tag such as ``en`` or ``en-US`` when the clinic knows
      it: sent as a hint (its ISO 639-1 part) and reported as the
      transcript's language (anything else raises
      ``TranscriberConfigurationError`` here). Otherwise the service's
      detected language is reported when the model gives one.
    - ``prompt``: vocabulary or style hints sent with every request.
    - ``client``: an ``openai.OpenAI`` to use (its own retries are turned
      off); otherwise one is built from ``api_key`` or ``OPENAI_API_KEY``.

    Audio in a format the service reads (FLAC, M4A/MP4, MP3, Ogg, WAV, WebM)
    that fits one request is sent as it is. Anything else (larger than
    ``max_request_bytes``, longer than the model takes, or AAC, AMR, CAF,
    3GP) is decoded to 16 kHz mono and sent as ``chunk_format`` (FLAC by
    default) pieces, each cut at the quietest point of its last 30 seconds,
    in order, each request under the limit; the texts are joined in order,
    and each request carries the end of the previous text as its prompt so
    sentences continue across cuts.

    Retries: 429, 408, 409, 5xx, timeouts and connection errors are retried
    here, up to ``max_retries`` times per request, waiting what the service
    asks (``Retry-After`` / ``retry-after-ms``) or an exponential backoff
    with jitter, so a long recording's finished pieces are not sent again.
    A wait longer than ``max_retry_wait`` seconds, or running out of
    retries, raises ``TransientTranscriptionError`` with ``retry_after`` for
    the worker to schedule. 401/403/404 (key, permission, model) raise
    ``TranscriberConfigurationError``, and so does a 400 about the
    configured ``language`` (one of a tag's form the service does not know,
    such as ``eng``: ``details["parameter"]``); other 4xx (the audio was
    refused) ``PermanentTranscriptionError``; 429 ``insufficient_quota`` is
    a configuration error, not a throttle.
    """

    name: ClassVar[str] = "openai"

    def __init__(
        self,
        *,
        client: openai.OpenAI | None = None,
        model: str = DEFAULT_MODEL,
        language: str | None = None,
        prompt: str | None = None,
        api_key: str | None = None,
        timeout: float = 600.0,
        max_request_bytes: int = OPENAI_MAX_REQUEST_BYTES,
        max_chunk_seconds: float | None = None,
        chunk_format: str = "flac",
        max_retries: int = 4,
        max_retry_wait: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if chunk_format not in ENCODINGS:
            msg = f"chunk_format must be one of {sorted(ENCODINGS)}"
            raise TranscriberConfigurationError(msg, parameter="chunk_format")
        whole_number(max_request_bytes, "max_request_bytes", minimum=2 * _REQUEST_OVERHEAD + 1)
        timeout = positive_seconds(timeout, "timeout")
        if max_chunk_seconds is not None:
            max_chunk_seconds = positive_seconds(max_chunk_seconds, "max_chunk_seconds")
        whole_number(max_retries, "max_retries", minimum=0)
        max_retry_wait = positive_seconds(max_retry_wait, "max_retry_wait", zero=True)
        language = configured_language(language)
        if client is None:
            try:
                client = openai.OpenAI(api_key=api_key, max_retries=0, timeout=timeout)
            except openai.OpenAIError as exc:
                msg = "Set OPENAI_API_KEY, or pass api_key or client"
                raise TranscriberConfigurationError(msg) from exc
        else:
            client = client.with_options(max_retries=0)
        self._client = client
        self.model = model
        self.language = language
        self.prompt = prompt
        self.chunk_format = chunk_format
        self.max_request_bytes = max_request_bytes
        self.max_retries = max_retries
        self.max_retry_wait = max_retry_wait
        self._sleep = sleep
        caps = [_GPT4O_MAX_SECONDS] if model.startswith("gpt-4o") else []
        if max_chunk_seconds is not None:
            caps.append(max_chunk_seconds)
        self._duration_cap = min(caps) if caps else None
        size_limit = (max_request_bytes - _REQUEST_OVERHEAD) / (
            _BYTES_PER_SECOND * _ENCODED_OVER_PCM
        )
        self.max_chunk_seconds: float = min([size_limit, *caps])
        """The longest piece of audio sent in one request, in seconds."""
        self.search_seconds: float = min(_DEFAULT_SEARCH_SECONDS, self.max_chunk_seconds / 4)
        """How far before each cut the quietest point is looked for, in seconds."""

    def transcribe(self, audio: TranscriptionInput) -> Transcript:
        """Return the transcript of ``audio``, in as many requests as its size requires."""
        parts = [self._direct(audio)] if self._sendable(audio) else list(self._chunked(audio))
        text = " ".join(part.text.strip() for part in parts if part.text.strip())
        language = self.language or next((p.language for p in parts if p.language), None)
        return Transcript(text, confidence=_weighted(parts), language=language, service=self.name)

    def _sendable(self, audio: TranscriptionInput) -> bool:
        try:
            canonical = policy.resolve_audio_type(audio.mime_type)[1].mime_type
        except UnsupportedContentTypeError:
            return False
        if canonical not in _DIRECT or audio.size > self.max_request_bytes - _REQUEST_OVERHEAD:
            return False
        if self._duration_cap is None:
            return True
        duration = audio.duration_seconds
        if duration is None:
            with audio.open() as stream:
                duration = inspect_audio(stream).duration_seconds
        return duration <= self._duration_cap

    def _direct(self, audio: TranscriptionInput) -> _Part:
        canonical = policy.resolve_audio_type(audio.mime_type)[1].mime_type
        with audio.open() as stream:
            data = stream.read()
        return self._send(
            data, f"audio.{_DIRECT[canonical]}", canonical, audio.duration_seconds, previous=""
        )

    def _chunked(self, audio: TranscriptionInput) -> Iterator[_Part]:
        max_bytes = int(self.max_chunk_seconds * _BYTES_PER_SECOND)
        search_bytes = int(self.search_seconds * _BYTES_PER_SECOND)
        previous = ""
        with audio.open() as stream:
            pcm = decode_pcm(stream, sample_rate=SAMPLE_RATE)
            pieces = split_at_silences(
                pcm,
                max_bytes=max_bytes,
                search_bytes=search_bytes,
                min_bytes=min(max_bytes // 2, int(_MIN_PIECE_SECONDS * _BYTES_PER_SECOND)),
            )
            for piece in pieces:
                for encoded, seconds in self._encode_within_limit(piece):
                    part = self._send(
                        encoded,
                        f"audio.{self.chunk_format}",
                        _MIME[self.chunk_format],
                        seconds,
                        previous=previous,
                    )
                    previous = part.text or previous
                    yield part

    def _encode_within_limit(self, piece: bytes) -> Iterator[tuple[bytes, float]]:
        encoded = encode_pcm([piece], sample_rate=SAMPLE_RATE, format=self.chunk_format)
        if len(encoded) <= self.max_request_bytes - _REQUEST_OVERHEAD or len(piece) < 4:
            yield encoded, len(piece) / _BYTES_PER_SECOND
            return
        # Never expected (the plan allows for the encoder's worst case); halve at a pause.
        cut = choose_cut(piece, max_bytes=len(piece) // 2, search_bytes=len(piece) // 4)
        yield from self._encode_within_limit(piece[:cut])
        yield from self._encode_within_limit(piece[cut:])

    def _send(
        self, data: bytes, filename: str, mime_type: str, seconds: float | None, *, previous: str
    ) -> _Part:
        arguments: dict[str, Any] = {
            "model": self.model,
            "file": (filename, data, mime_type),
        }
        verbose = self.model.startswith("whisper")
        arguments["response_format"] = "verbose_json" if verbose else "json"
        if self.model in {"gpt-4o-transcribe", "gpt-4o-mini-transcribe"}:
            arguments["include"] = ["logprobs"]
        if self.language:
            arguments["language"] = self.language.split("-", 1)[0].lower()
        prompt = " ".join(p for p in (self.prompt, previous[-_PROMPT_TAIL:]) if p)
        if prompt:
            arguments["prompt"] = prompt
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(_retryable),
            stop=self._stop,
            wait=self._wait,
            sleep=self._sleep,
            reraise=True,
        )
        part: _Part = retrying(self._call, arguments, seconds)
        return part

    def _call(self, arguments: dict[str, Any], seconds: float | None) -> _Part:
        return _parse(self._create(arguments), seconds)

    def _create(self, arguments: dict[str, Any]) -> Any:
        try:
            return self._client.audio.transcriptions.create(**arguments)
        except openai.APIStatusError as exc:
            raise status_error(exc, language=arguments.get("language")) from exc
        except openai.APITimeoutError as exc:
            msg = "The transcription request timed out"
            raise TransientTranscriptionError(msg) from exc
        except openai.APIConnectionError as exc:
            msg = "The transcription service could not be reached"
            raise TransientTranscriptionError(msg) from exc
        except (openai.APIResponseValidationError, json.JSONDecodeError) as exc:
            msg = "The transcription service answered with an unexpected response"
            raise TransientTranscriptionError(msg) from exc

    def _stop(self, state: RetryCallState) -> bool:
        if state.attempt_number > self.max_retries:
            return True
        delay = _retry_after_of(state)
        return delay is not None and delay > self.max_retry_wait

    @staticmethod
    def _wait(state: RetryCallState) -> float:
        delay = _retry_after_of(state)
        if delay is not None:
            return delay
        backoff: float = tenacity.wait_exponential_jitter(initial=1, max=30)(state)
        return backoff


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, TransientTranscriptionError) and not isinstance(
        exc, TranscriberConfigurationError
    )


def _retry_after_of(state: RetryCallState) -> float | None:
    outcome = state.outcome
    if outcome is None:
        return None
    exc = outcome.exception()
    return exc.retry_after if isinstance(exc, TransientTranscriptionError) else None


def _parse(response: Any, seconds: float | None) -> _Part:
    # The SDK hands back a bare string for a text/plain or HTML answer (a proxy's page),
    # and a model without text for "{}": neither is a transcript, even an empty one.
    data = response.to_dict(warnings=False) if isinstance(response, openai.BaseModel) else None
    if data is None or not isinstance(data.get("text"), str):
        msg = "The transcription service answered without a transcript"
        raise TransientTranscriptionError(msg)
    try:
        answer = OpenAIAnswer.model_validate(data)
    except pydantic.ValidationError as exc:
        # The same request would get the same answer (an OpenAI-compatible server's own
        # shape, say): permanent. Not chained: pydantic's message quotes the values.
        msg = "The transcription service's answer is not in the documented shape"
        raise bad_result(msg, exc) from None
    confidence = openai_confidence(data)
    if seconds is None and answer.duration is not None:
        seconds = answer.duration
    return _Part(answer.text, seconds, confidence, language_tag(answer.language))


def _weighted(parts: list[_Part]) -> float | None:
    known = [(p.confidence, p.seconds or 0.0) for p in parts if p.confidence is not None]
    if not known:
        return None
    total = sum(weight for _, weight in known)
    if total <= 0:
        return sum(c for c, _ in known) / len(known)
    return sum(c * w for c, w in known) / total
