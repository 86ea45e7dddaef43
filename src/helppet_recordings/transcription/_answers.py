"""The transcription services' answers as pydantic models: what the backends read of them.

Only the fields the backends use are modelled; anything else is ignored. An
answer that does not fit (a transcript that is not a string, a language that
is not one) is refused by :func:`bad_result`, never read half-way. OpenAI's
scores are read apart (:func:`openai_confidence`): scores that do not fit (a
log probability that is not a number, a scored segment without its end)
cost the transcript its confidence, not the paid transcript itself.
"""

from __future__ import annotations

import logging
import math
from typing import Annotated, Any, Final, Self

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from helppet_recordings.transcription.errors import PermanentTranscriptionError

__all__ = [
    "OpenAIAnswer",
    "OpenAILogprob",
    "OpenAIScores",
    "OpenAISegment",
    "TranscribeResult",
    "bad_result",
    "openai_confidence",
]

Finite = Annotated[float, Field(allow_inf_nan=False)]
_logger: Final = logging.getLogger("helppet_recordings.transcription")


class _Answer(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class OpenAISegment(_Answer):
    """One segment of a ``verbose_json`` answer: its time span and mean token log probability."""

    start: Finite | None = None
    end: Finite | None = None
    avg_logprob: Finite | None = None

    @pydantic.model_validator(mode="after")
    def _scored_segments_are_timed(self) -> Self:
        if self.avg_logprob is not None and (self.start is None or self.end is None):
            msg = "a segment with avg_logprob needs its start and end"
            raise ValueError(msg)
        return self


class OpenAILogprob(_Answer):
    """One token's log probability (``include=["logprobs"]`` on gpt-4o models)."""

    logprob: Finite


class OpenAIAnswer(_Answer):
    """A transcription answer (``json`` or ``verbose_json``): its transcript, language, length."""

    text: str
    language: str | None = None
    duration: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None


class OpenAIScores(_Answer):
    """What an answer says of its certainty: segment or token log probabilities."""

    segments: list[OpenAISegment] | None = None
    logprobs: list[OpenAILogprob] | None = None

    @property
    def confidence(self) -> float | None:
        """The segments' probabilities weighted by duration, else the tokens' mean; 0 to 1."""
        spans = [
            # A log probability is at most 0; one rounded above it must not overflow exp().
            (math.exp(min(0.0, s.avg_logprob)), max(0.0, s.end - s.start))
            for s in self.segments or []
            if s.avg_logprob is not None and s.end is not None and s.start is not None
        ]
        confidence: float | None = None
        if spans:
            total = sum(weight for _, weight in spans)
            confidence = (
                sum(p * w for p, w in spans) / total
                if total > 0
                else sum(p for p, _ in spans) / len(spans)
            )
        logprobs = self.logprobs or []
        if confidence is None and logprobs:
            confidence = sum(math.exp(min(0.0, t.logprob)) for t in logprobs) / len(logprobs)
        return None if confidence is None else min(1.0, max(0.0, confidence))


def openai_confidence(answer: dict[str, Any]) -> float | None:
    """Return the confidence an OpenAI answer's scores give, or None when they do not fit.

    Scores not in the documented shape (an OpenAI-compatible server's
    ``avg_logprob`` that is not a number, say) are logged at WARNING, by
    field and problem only (never a value, which may quote the transcript),
    and dropped: the transcript is kept without a confidence.
    """
    try:
        scores = OpenAIScores.model_validate(answer)
    except pydantic.ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False, include_context=False)[0]
        _logger.warning(
            "The transcription service's scores are not in the documented shape (%s: %s); "
            "the transcript is kept without a confidence",
            ".".join(str(part) for part in first["loc"]) or "answer",
            first["type"],
        )
        return None
    return scores.confidence


class _TranscribeAlternative(_Answer):
    confidence: Finite | None = None


class _TranscribeItem(_Answer):
    type: str | None = None
    alternatives: list[_TranscribeAlternative] = []


class _TranscribeText(_Answer):
    transcript: str


class _TranscribeResults(_Answer):
    transcripts: list[_TranscribeText]
    items: list[_TranscribeItem] = []
    language_code: str | None = None


class TranscribeResult(_Answer):
    """An Amazon Transcribe result document (the job's ``asrOutput.json``)."""

    results: _TranscribeResults

    @property
    def text(self) -> str:
        """The transcripts, joined."""
        return " ".join(t.transcript for t in self.results.transcripts).strip()

    @property
    def confidences(self) -> list[float]:
        """The confidence of each recognised word (pronunciation items) that has one."""
        return [
            item.alternatives[0].confidence
            for item in self.results.items
            if item.type == "pronunciation"
            and item.alternatives
            and item.alternatives[0].confidence is not None
        ]


def bad_result(
    message: str, exc: pydantic.ValidationError, **details: Any
) -> PermanentTranscriptionError:
    """Return the ``bad_result`` error for an answer ``exc`` refused.

    ``details`` gain where (``field``, e.g. ``segments.0.avg_logprob``) and
    what (``problem``, pydantic's error type): never the value, which may
    quote the transcript. The caller raises it ``from None`` for that reason.
    """
    first = exc.errors(include_url=False, include_input=False, include_context=False)[0]
    return PermanentTranscriptionError(
        message,
        reason="bad_result",
        field=".".join(str(part) for part in first["loc"]) or None,
        problem=first["type"],
        **details,
    )
