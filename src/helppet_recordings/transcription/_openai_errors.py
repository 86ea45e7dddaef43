"""What the OpenAI SDK's error statuses mean to the worker: the one translation point."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from helppet_recordings.transcription._retry_after import retry_after_seconds
from helppet_recordings.transcription.errors import (
    PermanentTranscriptionError,
    TranscriberConfigurationError,
    TransientTranscriptionError,
)

if TYPE_CHECKING:
    import openai

__all__ = ["status_error"]

_TRANSIENT_STATUSES: Final = frozenset({408, 409, 429})
_CONFIGURATION_STATUSES: Final = frozenset({401, 403, 404})


def status_error(exc: openai.APIStatusError) -> Exception:
    """Return the package's error for an error status the service answered.

    429 ``insufficient_quota`` is a configuration error, not a throttle;
    408, 409, 429 and 5xx are transient (with the ``Retry-After`` the
    service gave); 401, 403 and 404 (key, permission, model) are
    configuration errors; any other 4xx is a refusal of the audio.
    """
    status = exc.status_code
    code = _error_code(exc)
    if status == 429 and code == "insufficient_quota":
        return TranscriberConfigurationError(
            "The OpenAI account has no quota left", status=status, service_code=code
        )
    if status in _TRANSIENT_STATUSES or status >= 500:
        return TransientTranscriptionError(
            f"The transcription service answered {status}",
            retry_after=retry_after_seconds(exc.response.headers),
            status=status,
            service_code=code,
        )
    if status in _CONFIGURATION_STATUSES:
        return TranscriberConfigurationError(
            f"The transcription service refused the credentials or model ({status})",
            status=status,
            service_code=code,
        )
    return PermanentTranscriptionError(
        f"The transcription service refused the audio ({status})",
        reason="refused",
        status=status,
        service_code=code,
    )


def _error_code(exc: openai.APIStatusError) -> str | None:
    """Return the ``code`` of the service's error answer, when it gave one."""
    body = exc.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("code"), str):
            return str(inner["code"])[:100]
    return None
