"""What an upload may be: audio types, filenames, sizes, durations and metadata.

Pure functions, no I/O. Each check raises the contract's error with
``details`` that tell the client what to fix.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import unicodedata
from collections.abc import Mapping
from typing import Any, Final

import attrs

from helppet_recordings.errors import (
    FileTooLargeError,
    UnsupportedContentTypeError,
    ValidationError,
)

__all__ = [
    "AUDIO_TYPES",
    "MAX_CONTENT_TYPE_LENGTH",
    "MAX_DURATION_SECONDS",
    "MAX_FILENAME_LENGTH",
    "MAX_METADATA_DEPTH",
    "MAX_METADATA_LENGTH",
    "AudioType",
    "check_extension_matches",
    "check_file_size",
    "check_filename",
    "check_text",
    "dump_metadata",
    "filename_extension",
    "normalize_checksum",
    "normalize_content_type",
    "resolve_audio_type",
    "storable_text",
]

MAX_FILENAME_LENGTH: Final = 255
"""Longest accepted client filename, in characters (the column is VARCHAR(255))."""

MAX_METADATA_LENGTH: Final = 2000
"""Longest accepted ``recording_metadata``, in characters of compact JSON."""

MAX_METADATA_DEPTH: Final = 8
"""Deepest accepted nesting of objects and arrays inside ``recording_metadata``."""

MAX_DURATION_SECONDS: Final = 24 * 60 * 60
"""Longest accepted recording duration: one day."""

MAX_CONTENT_TYPE_LENGTH: Final = 100
"""Longest accepted content type (the ``mime_type`` column is VARCHAR(100))."""


@attrs.frozen
class AudioType:
    """One accepted audio format: its canonical MIME type, aliases and file extensions.

    ``extensions[0]`` is the extension given to stored keys.
    """

    mime_type: str
    extensions: tuple[str, ...]
    aliases: tuple[str, ...] = ()

    @property
    def extension(self) -> str:
        """The extension used in storage keys for this type."""
        return self.extensions[0]


AUDIO_TYPES: Final[tuple[AudioType, ...]] = (
    AudioType("audio/mp4", ("m4a", "mp4", "m4b"), ("audio/m4a", "audio/x-m4a", "audio/mp4a-latm")),
    AudioType("audio/aac", ("aac", "adts"), ("audio/x-aac", "audio/aacp", "audio/x-hx-aac-adts")),
    AudioType("audio/mpeg", ("mp3", "mpga", "mp2"), ("audio/mp3", "audio/x-mp3", "audio/mpeg3")),
    AudioType("audio/wav", ("wav", "wave"), ("audio/x-wav", "audio/wave", "audio/vnd.wave")),
    AudioType("audio/webm", ("webm", "weba")),
    AudioType("audio/ogg", ("ogg", "oga", "opus"), ("audio/opus", "audio/x-ogg")),
    AudioType("audio/flac", ("flac",), ("audio/x-flac",)),
    AudioType("audio/amr", ("amr",), ("audio/x-amr",)),
    AudioType("audio/amr-wb", ("awb",)),
    AudioType("audio/x-caf", ("caf",), ("audio/caf",)),
    AudioType("audio/3gpp", ("3gp", "3gpp"), ("audio/3gp",)),
    AudioType("audio/3gpp2", ("3g2", "3gpp2")),
)
"""The allow-list of audio formats."""

_BY_MIME: Final[dict[str, AudioType]] = {
    name: audio for audio in AUDIO_TYPES for name in (audio.mime_type, *audio.aliases)
}

_KNOWN_EXTENSIONS: Final = frozenset(
    extension for audio in AUDIO_TYPES for extension in audio.extensions
)
"""Every extension of an accepted audio format: the only ones an error may name."""


def normalize_content_type(content_type: str) -> str:
    """Return the bare, lower-case MIME type: ``Audio/MP4; codecs=x`` becomes ``audio/mp4``."""
    return content_type.split(";", 1)[0].strip().lower()


def resolve_audio_type(content_type: str) -> tuple[str, AudioType]:
    """Return the normalized content type and the audio format it names.

    Raises ``UNSUPPORTED_CONTENT_TYPE`` for anything outside the allow-list.
    """
    normalized = normalize_content_type(content_type)
    audio = _BY_MIME.get(normalized)
    if audio is None:
        raise UnsupportedContentTypeError(
            f"{_shorten(content_type)!r} is not an accepted audio content type",
            content_type=_shorten(content_type),
            allowed_content_types=sorted(_BY_MIME),
        )
    return normalized, audio


def filename_extension(filename: str) -> str | None:
    """Return the lower-case extension of ``filename``, or None when it has none."""
    stem, dot, extension = filename.rpartition(".")
    if not dot or not stem or not extension:
        return None
    return extension.lower()


def check_extension_matches(filename: str, audio: AudioType) -> None:
    """Raise ``UNSUPPORTED_CONTENT_TYPE`` when the filename's extension is not of ``audio``.

    The error names the content type and its extensions, never the filename:
    whatever follows its last dot may be any client text (a name, an
    address). ``details["filename_extension"]`` is there only when the
    extension is one of another accepted audio format (``wav`` for
    ``audio/mp4``).
    """
    extension = filename_extension(filename)
    if extension is None or extension in audio.extensions:
        return
    allowed = ", ".join(f".{name}" for name in audio.extensions)
    details: dict[str, Any] = {
        "content_type": audio.mime_type,
        "allowed_extensions": list(audio.extensions),
    }
    if extension in _KNOWN_EXTENSIONS:
        details["filename_extension"] = extension
    raise UnsupportedContentTypeError(
        f"The filename's extension does not match the content type {audio.mime_type} "
        f"(accepted: {allowed})",
        **details,
    )


def check_filename(filename: str) -> str:
    """Return ``filename`` if it is a safe, plain file name; raise ``VALIDATION_ERROR`` if not.

    A filename is 1 to 255 characters of printable text with no path
    separators, no control or formatting characters (which could disguise
    an extension) and no leading or trailing white space.
    """
    problem: str | None = None
    if not filename:
        problem = "must not be empty"
    elif len(filename) > MAX_FILENAME_LENGTH:
        problem = f"must be at most {MAX_FILENAME_LENGTH} characters"
    elif "/" in filename or "\\" in filename or filename in {".", ".."}:
        problem = "must be a file name, not a path"
    elif filename != filename.strip():
        problem = "must not start or end with white space"
    elif not (filename.isascii() and filename.isprintable()) and any(
        unicodedata.category(ch) in _FORBIDDEN_CATEGORIES for ch in filename
    ):  # the ASCII test is a fast path: printable ASCII holds no forbidden character
        problem = "must not contain control or invisible formatting characters"
    if problem is not None:
        raise ValidationError.for_field("filename", problem)
    return filename


# Cc: control characters; Cf: format characters such as U+202E (right-to-left
# override), which can make "x\u202egpj.m4a" display as "xa4m.jpg"; Cs: lone
# surrogates, which cannot be encoded; Zl/Zp: line and paragraph separators.
_FORBIDDEN_CATEGORIES: Final = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def check_file_size(size: int, *, max_size: int, field: str = "file_size_bytes") -> None:
    """Raise ``VALIDATION_ERROR`` for a negative size and ``FILE_TOO_LARGE`` above ``max_size``."""
    if size < 0:
        raise ValidationError.for_field(field, "must not be negative")
    if size > max_size:
        raise FileTooLargeError(
            f"The file is {size} bytes; the maximum is {max_size} bytes",
            file_size_bytes=size,
            max_file_size=max_size,
        )


def dump_metadata(metadata: Mapping[str, Any]) -> str:
    """Return ``metadata`` as compact JSON, checking it fits the 2000-character column.

    Raises ``VALIDATION_ERROR`` when it is nested deeper than
    ``MAX_METADATA_DEPTH``, holds values JSON cannot represent (NaN,
    infinity, non-string keys, other objects) or is too long.
    """
    _check_depth(metadata)
    try:
        text = json.dumps(metadata, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValidationError.for_field(
            "recording_metadata", "must hold only JSON values (no NaN or infinity)"
        ) from exc
    if len(text) > MAX_METADATA_LENGTH:
        raise ValidationError.for_field(
            "recording_metadata",
            f"is {len(text)} characters as JSON; the maximum is {MAX_METADATA_LENGTH}",
        )
    return text


_HEX_DIGITS: Final = re.compile("[0-9a-fA-F]*")


def normalize_checksum(value: str, *, algorithm: str) -> str:
    """Return an MD5 or SHA-256 digest as lower-case hex; accept hex or base64.

    ``algorithm`` is ``"md5"`` or ``"sha256"``. Raises ``ValueError`` for
    anything that is not a digest of that size in either encoding.
    """
    size = _DIGEST_SIZES[algorithm]
    text = value.strip()
    # fromhex skips whitespace: check the characters, or "ab cd…" passes as a shorter digest.
    if len(text) == size * 2 and _HEX_DIGITS.fullmatch(text):
        return text.lower()
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != size:
        msg = f"must be a {algorithm.upper()} digest as {size * 2} hex characters or base64"
        raise ValueError(msg)
    return raw.hex()


_DIGEST_SIZES: Final = {"md5": 16, "sha256": 32}


def check_text(value: str, field: str) -> str:
    """Return ``value`` if every database can store it; raise ``VALIDATION_ERROR`` if not.

    PostgreSQL refuses NUL characters in text, and no database driver can
    encode an unpaired surrogate (a JSON escape of half a surrogate pair
    decodes to one).
    """
    if "\x00" in value:
        raise ValidationError.for_field(field, "must not contain NUL characters")
    return _check_encodable(value, field)


def storable_text(value: str) -> str:
    """Return ``value`` without what no database can store (see :func:`check_text`).

    NUL characters are dropped, and each unpaired surrogate becomes U+FFFD
    (the replacement character). For text the package did not choose, such
    as what a transcription service returned: losing one odd character beats
    losing the transcript.
    """
    if "\x00" in value:
        value = value.replace("\x00", "")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = _SURROGATE.sub("\ufffd", value)
    return value


_SURROGATE: Final = re.compile("[\ud800-\udfff]")


def _check_encodable(value: str, field: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError.for_field(
            field, "must not contain unpaired surrogate characters"
        ) from None
    return value


def _check_depth(value: object) -> None:
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            _check_encodable(item, "recording_metadata")  # JSON escapes NUL itself
            continue
        if isinstance(item, Mapping):
            children: list[object] = list(item.values())
            for key in item:
                if not isinstance(key, str):
                    raise ValidationError.for_field(
                        "recording_metadata", "object keys must be strings"
                    )
                _check_encodable(key, "recording_metadata")
        elif isinstance(item, list | tuple):
            children = list(item)
        else:
            continue
        if depth > MAX_METADATA_DEPTH:
            raise ValidationError.for_field(
                "recording_metadata", f"must not be nested more than {MAX_METADATA_DEPTH} levels"
            )
        stack.extend((child, depth + 1) for child in children)


def _shorten(text: str, limit: int = MAX_CONTENT_TYPE_LENGTH) -> str:
    """Cut untrusted text before echoing it back in an error."""
    return text if len(text) <= limit else text[:limit] + "…"
