"""A transcriber's numeric options are checked when it is built, naming the option."""

from __future__ import annotations

from typing import Any

import pytest

from helppet_recordings.transcription import (
    LocalTranscriber,
    OpenAITranscriber,
    TranscriberConfigurationError,
)


@pytest.mark.parametrize(
    ("options", "parameter"),
    [
        ({"search_seconds": float("nan")}, "search_seconds"),
        ({"search_seconds": 0}, "search_seconds"),
        ({"search_seconds": 30.0}, "search_seconds"),
        ({"search_seconds": "5"}, "search_seconds"),
        ({"max_utterance_seconds": float("inf")}, "max_utterance_seconds"),
        ({"max_utterance_seconds": True}, "max_utterance_seconds"),
    ],
)
def test_local_options_are_refused_by_name(options: dict[str, Any], parameter: str) -> None:
    """NaN, a string or a search window past the utterance is a configuration error."""
    with pytest.raises(TranscriberConfigurationError) as refused:
        LocalTranscriber(**options)
    assert refused.value.details["parameter"] == parameter


@pytest.mark.parametrize(
    ("options", "parameter"),
    [
        ({"chunk_format": "wav9"}, "chunk_format"),
        ({"max_request_bytes": 10}, "max_request_bytes"),
        ({"max_request_bytes": 25e6}, "max_request_bytes"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": "600"}, "timeout"),
        ({"max_chunk_seconds": float("nan")}, "max_chunk_seconds"),
        ({"max_chunk_seconds": -1}, "max_chunk_seconds"),
        ({"max_retries": -1}, "max_retries"),
        ({"max_retries": 1.5}, "max_retries"),
        ({"max_retry_wait": float("nan")}, "max_retry_wait"),
        ({"max_retry_wait": -1}, "max_retry_wait"),
    ],
)
def test_openai_options_are_refused_by_name(options: dict[str, Any], parameter: str) -> None:
    """Each is refused before a client is made or a request sent; the worker keeps recordings."""
    with pytest.raises(TranscriberConfigurationError) as refused:
        OpenAITranscriber(api_key="test-key", **options)
    assert refused.value.details["parameter"] == parameter


def test_zero_retry_wait_and_no_retries_are_accepted() -> None:
    """``max_retry_wait=0`` (never wait) and ``max_retries=0`` (one attempt) are valid."""
    transcriber = OpenAITranscriber(api_key="test-key", max_retry_wait=0, max_retries=0)
    assert (transcriber.max_retry_wait, transcriber.max_retries) == (0.0, 0)
