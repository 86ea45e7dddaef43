"""Language tags: the form a transcript's language takes, and the names OpenAI reports."""

from __future__ import annotations

import re
from typing import Final

from helppet_recordings.transcription.errors import TranscriberConfigurationError

__all__ = ["configured_language", "is_language_tag", "language_tag"]

_LANGUAGE_TAG: Final = re.compile(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8}){0,2}")
_MAX_TAG_LENGTH: Final = 10

# The languages OpenAI documents for its speech-to-text models, by the English
# name ``verbose_json`` reports, with their ISO 639-1 codes.
_CODES: Final = {
    "afrikaans": "af", "arabic": "ar", "armenian": "hy", "azerbaijani": "az",
    "belarusian": "be", "bosnian": "bs", "bulgarian": "bg", "catalan": "ca",
    "chinese": "zh", "croatian": "hr", "czech": "cs", "danish": "da", "dutch": "nl",
    "english": "en", "estonian": "et", "finnish": "fi", "french": "fr", "galician": "gl",
    "german": "de", "greek": "el", "hebrew": "he", "hindi": "hi", "hungarian": "hu",
    "icelandic": "is", "indonesian": "id", "italian": "it", "japanese": "ja",
    "kannada": "kn", "kazakh": "kk", "korean": "ko", "latvian": "lv", "lithuanian": "lt",
    "macedonian": "mk", "malay": "ms", "marathi": "mr", "maori": "mi", "nepali": "ne",
    "norwegian": "no", "persian": "fa", "polish": "pl", "portuguese": "pt",
    "romanian": "ro", "russian": "ru", "serbian": "sr", "slovak": "sk", "slovenian": "sl",
    "spanish": "es", "swahili": "sw", "swedish": "sv", "tagalog": "tl", "tamil": "ta",
    "thai": "th", "turkish": "tr", "ukrainian": "uk", "urdu": "ur", "vietnamese": "vi",
    "welsh": "cy",
}  # fmt: skip


def language_tag(reported: str | None) -> str | None:
    """Return a language tag for what the service reported: a tag stays, a known name maps."""
    if not reported:
        return None
    value = reported.strip()
    if 2 <= len(value) <= 3 and value.isalpha():
        return value.lower()
    return _CODES.get(value.lower())


def is_language_tag(value: object) -> bool:
    """Return whether ``value`` is a language tag a transcript may carry (``en``, ``en-US``)."""
    return (
        isinstance(value, str)
        and len(value) <= _MAX_TAG_LENGTH
        and _LANGUAGE_TAG.fullmatch(value) is not None
    )


def configured_language(value: object, *, parameter: str = "language") -> str | None:
    """Return a transcriber's configured language (None for None or ""), or refuse it.

    Raises ``TranscriberConfigurationError`` naming ``parameter`` when the
    value is not a language tag, before any audio is decoded or sent.
    """
    if value is None or value == "":
        return None
    if not is_language_tag(value):
        msg = (
            f"{parameter} must be a language tag such as 'en' or 'en-US', or None, "
            f"not {str(value)[:40]!r}"
        )
        raise TranscriberConfigurationError(msg, parameter=parameter)
    return str(value)
