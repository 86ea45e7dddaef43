"""How the Amazon Transcribe backend translates botocore's errors (no AWS, no moto)."""

from __future__ import annotations

from typing import Any

import botocore.exceptions
import pytest

from helppet_recordings.transcription import (
    PermanentTranscriptionError,
    TranscriberConfigurationError,
    TransientTranscriptionError,
)
from helppet_recordings.transcription.aws import _translate


def _client_error(code: str, status: int, headers: dict[str, str] | None = None) -> Exception:
    response: Any = {
        "Error": {"Code": code, "Message": "m"},
        "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": headers or {}},
    }
    return botocore.exceptions.ClientError(response, "StartTranscriptionJob")


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (_client_error("LimitExceededException", 400), TransientTranscriptionError),
        (_client_error("InternalFailureException", 500), TransientTranscriptionError),
        (_client_error("Anything", 503), TransientTranscriptionError),
        (_client_error("AccessDeniedException", 403), TranscriberConfigurationError),
        (_client_error("UnrecognizedClientException", 400), TranscriberConfigurationError),
        (_client_error("BadRequestException", 400), PermanentTranscriptionError),
        (
            botocore.exceptions.EndpointConnectionError(endpoint_url="https://x"),
            TransientTranscriptionError,
        ),
        (botocore.exceptions.NoCredentialsError(), TranscriberConfigurationError),
    ],
)
def test_error_translation(error: Exception, kind: type[Exception]) -> None:
    """Errors of botocore map to transient, configuration or permanent errors."""
    translated = _translate(error)
    assert type(translated) is kind


def test_throttling_carries_retry_after() -> None:
    """A Retry-After header from AWS becomes retry_after."""
    translated = _translate(_client_error("ThrottlingException", 400, {"retry-after": "9"}))
    assert isinstance(translated, TransientTranscriptionError)
    assert translated.retry_after == 9.0
