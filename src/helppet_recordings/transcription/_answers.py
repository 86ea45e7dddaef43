"""The transcription services' answers as pydantic models: what the backends read of them.

Only the fields the backends use are modelled; anything else is ignored. An
answer that does not fit (a confidence that is not a number, a scored segment
without its end) is refused by :func:`bad_result`, never read half-way.
"""

from __future__ import annotations

from typing import Annotated, Any, Self

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from helppet_recordings.transcription.errors import PermanentTranscriptionError

__all__ = [
    "OpenAIAnswer",
    "OpenAILogprob",
    "OpenAISegment",
    "TranscribeResult",
    "bad_result",
]

Finite = Annotated[float, Field(allow_inf_nan=False)]


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
    """A transcription answer (``json`` or ``verbose_json``)."""

    text: str
    language: str | None = None
    duration: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    segments: list[OpenAISegment] | None = None
    logprobs: list[OpenAILogprob] | None = None


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
