"""ISO 639-1 codes of the languages OpenAI's transcription models name in full."""

from __future__ import annotations

from typing import Final

__all__ = ["language_tag"]

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
