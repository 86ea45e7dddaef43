"""What the OpenAI SDK's error statuses mean to the worker: the one translation point."""

from __future__ import annotations

import re
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


def status_error(exc: openai.APIStatusError, *, language: str | None = None) -> Exception:
    """Return the package's error for an error status the service answered.

    429 ``insufficient_quota`` is a configuration error, not a throttle;
    408, 409, 429 and 5xx are transient (with the ``Retry-After`` the
    service gave); 401, 403 and 404 (key, permission, model) are
    configuration errors, and so is a 400 about ``language`` (the hint the
    request sent, if any: its ``param``, ``code`` or ``message`` names the
    language), which would refuse every recording alike; any other 4xx is
    a refusal of the audio.
    """
    status = exc.status_code
    error = _error_fields(exc)
    raw_code = error.get("code")
    code = raw_code[:100] if isinstance(raw_code, str) else None
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
    if status == 400 and language is not None and _about_language(error, language):
        return TranscriberConfigurationError(
            f"The transcription service does not accept the configured language (sent as "
            f"{language!r}): configure a code it lists, such as 'en', or None to let it detect "
            "the language",
            parameter="language",
            status=status,
            service_code=code,
        )
    return PermanentTranscriptionError(
        f"The transcription service refused the audio ({status})",
        reason="refused",
        status=status,
        service_code=code,
    )


def _error_fields(exc: openai.APIStatusError) -> dict[str, object]:
    """Return the service's error answer (``{"error": {...}}``, or the object itself)."""
    body = exc.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict):
            return inner
    return {}


def _about_language(error: dict[str, object], language: str) -> bool:
    """Return whether an error answer refuses the configured ``language`` itself.

    OpenAI names it in ``param`` (``invalid_language_format``). A compatible
    server may leave ``param`` null; its ``code`` and ``message`` then count
    only when they say a language is unsupported, invalid or unknown and the
    message names the language sent (``Unsupported language: 'eng'``). Others
    that mention languages ("language_detection_failed", "detected language
    'de' differs from requested 'en'") are about that recording, which is
    refused alone: taken for a configuration error, they would stop the worker.
    """
    if error.get("param") == "language":
        return True
    code, message = error.get("code"), error.get("message")
    if not isinstance(message, str):
        return False
    said = f"{code if isinstance(code, str) else ''} {message}".lower()
    refusal = any(word in said for word in _REFUSING_WORDS)
    named = re.search(rf"(?<![\w-]){re.escape(language)}(?![\w-])", message) is not None
    return "language" in said and refusal and named


_REFUSING_WORDS: Final = ("unsupported", "not supported", "invalid", "unknown", "unrecognized")
