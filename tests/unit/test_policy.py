"""Upload policy: content types, filenames, sizes and metadata."""

from __future__ import annotations

import json
import unicodedata
from typing import Any

import pydantic
import pytest
from hypothesis import given
from hypothesis import strategies as st

from helppet_recordings import (
    CompleteUploadRequest,
    FileTooLargeError,
    UnsupportedContentTypeError,
    ValidationError,
    policy,
)


@pytest.mark.parametrize(
    ("declared", "canonical", "extension"),
    [
        ("audio/m4a", "audio/mp4", "m4a"),
        ("audio/x-m4a", "audio/mp4", "m4a"),
        ("Audio/MP4; codecs=mp4a.40.2", "audio/mp4", "m4a"),
        ("audio/aac", "audio/aac", "aac"),
        ("audio/mpeg", "audio/mpeg", "mp3"),
        ("audio/mp3", "audio/mpeg", "mp3"),
        ("audio/wav", "audio/wav", "wav"),
        ("audio/x-wav", "audio/wav", "wav"),
        ("audio/webm;codecs=opus", "audio/webm", "webm"),
        ("audio/ogg", "audio/ogg", "ogg"),
        ("audio/flac", "audio/flac", "flac"),
        ("audio/x-flac", "audio/flac", "flac"),
        ("audio/amr", "audio/amr", "amr"),
        ("audio/x-caf", "audio/x-caf", "caf"),
        ("audio/3gpp", "audio/3gpp", "3gp"),
    ],
)
def test_allowed_types_and_aliases(declared: str, canonical: str, extension: str) -> None:
    """Every listed audio type and alias resolves to its format and key extension."""
    normalized, audio = policy.resolve_audio_type(declared)
    assert normalized == declared.split(";", maxsplit=1)[0].strip().lower()
    assert (audio.mime_type, audio.extension) == (canonical, extension)


@pytest.mark.parametrize(
    "declared",
    [
        "video/mp4",
        "text/html",
        "audio/",
        "audio",
        "",
        "application/octet-stream",
        "audio/mp4x",
        "image/svg+xml",
    ],
)
def test_other_types_are_unsupported(declared: str) -> None:
    """Anything outside the allow-list is UNSUPPORTED_CONTENT_TYPE with the allowed list."""
    with pytest.raises(UnsupportedContentTypeError) as info:
        policy.resolve_audio_type(declared)
    assert "audio/mp4" in info.value.details["allowed_content_types"]
    assert info.value.http_status == 415


def test_extension_must_match_the_type() -> None:
    """A filename whose extension belongs to another format is refused; none is fine."""
    _, mp4 = policy.resolve_audio_type("audio/mp4")
    policy.check_extension_matches("a.M4A", mp4)
    policy.check_extension_matches("recording", mp4)
    with pytest.raises(UnsupportedContentTypeError) as info:
        policy.check_extension_matches("a.wav", mp4)
    assert info.value.details == {
        "content_type": "audio/mp4",
        "allowed_extensions": ["m4a", "mp4", "m4b"],
        "filename_extension": "wav",  # another audio format's: safe to name
    }
    assert info.value.message == (
        "The filename's extension does not match the content type audio/mp4 "
        "(accepted: .m4a, .mp4, .m4b)"
    )


@pytest.mark.parametrize(
    "filename",
    [
        "visit.Jane Roe 12 Oak Lane",
        "Bello.the beagle, Jane Roe",
        "bello.janeroe",
        "visit.Oak Lane.txt",
        "visit.m4a.Jane",
        "Jane.Roe",
    ],
)
def test_a_mismatched_extension_is_never_echoed(filename: str) -> None:
    """What follows the filename's last dot is client text: the error names only the type's own.

    The message and details hold nothing of the filename, in any case or
    shortened, however the error is shown (``to_dict``, ``str``, ``repr``).
    """
    _, mp4 = policy.resolve_audio_type("audio/mp4")
    with pytest.raises(UnsupportedContentTypeError) as info:
        policy.check_extension_matches(filename, mp4)
    error = info.value
    assert error.details == {
        "content_type": "audio/mp4",
        "allowed_extensions": ["m4a", "mp4", "m4b"],
    }
    shown = f"{error.to_dict()} {error} {error!r}".lower()
    for word in ("jane", "roe", "oak", "lane", "bello", "beagle", "txt"):
        assert word not in shown, (word, shown)


@pytest.mark.parametrize(
    "filename",
    ["visit.m4a", "Zoë's Bello — check-up.m4a", "録音.m4a", "a" * 255, ".hidden.m4a", "x y.m4a"],
)
def test_plain_filenames_pass(filename: str) -> None:
    """Unicode, spaces and punctuation are fine in a file name."""
    assert policy.check_filename(filename) == filename


@pytest.mark.parametrize(
    "filename",
    [
        "",
        "a" * 256,
        "a/b.m4a",
        "a\\b.m4a",
        "..",
        ".",
        " a.m4a",
        "a.m4a\n",
        "a\x00.m4a",
        "a\x1b[31m.m4a",
        "x\u202egpj.m4a",
        "a\u2028b.m4a",
        "a\ud800.m4a",
    ],
)
def test_unsafe_filenames_are_refused(filename: str) -> None:
    """Paths, control and invisible formatting characters, and overlong names are refused."""
    with pytest.raises(ValidationError) as info:
        policy.check_filename(filename)
    assert info.value.details["errors"][0]["field"] == "filename"


@given(st.text(max_size=300))
def test_accepted_filenames_are_single_safe_segments(filename: str) -> None:
    """Whatever passes has no separators, no control characters and fits the column."""
    try:
        policy.check_filename(filename)
    except ValidationError:
        return
    assert 1 <= len(filename) <= 255
    assert "/" not in filename
    assert "\\" not in filename
    assert filename not in {".", ".."}
    categories = {unicodedata.category(ch) for ch in filename}
    assert not categories & {"Cc", "Cf", "Cs", "Zl", "Zp"}
    assert filename == filename.strip()


def test_sizes() -> None:
    """Negative sizes are invalid; sizes above the maximum are too large; the maximum is fine."""
    policy.check_file_size(0, max_size=10)
    policy.check_file_size(10, max_size=10)
    with pytest.raises(ValidationError):
        policy.check_file_size(-1, max_size=10)
    with pytest.raises(FileTooLargeError) as info:
        policy.check_file_size(11, max_size=10)
    assert info.value.details == {"file_size_bytes": 11, "max_file_size": 10}


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -1.0, 86_400.5])
def test_bad_durations(value: float) -> None:
    """Durations are finite and between zero and a day (``MAX_DURATION_SECONDS``)."""
    CompleteUploadRequest(file_size_bytes=1, duration_seconds=policy.MAX_DURATION_SECONDS)
    with pytest.raises(pydantic.ValidationError):
        CompleteUploadRequest(file_size_bytes=1, duration_seconds=value)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=30,
)


@given(st.dictionaries(st.text(max_size=10), json_values, max_size=6))
def test_metadata_is_accepted_iff_it_fits(metadata: dict[str, Any]) -> None:
    """Metadata passes exactly when its compact JSON fits 2000 characters and 8 levels."""
    text = json.dumps(metadata, separators=(",", ":"), ensure_ascii=False)
    try:
        dumped = policy.dump_metadata(metadata)
    except ValidationError:
        assert len(text) > 2000 or _depth(metadata) > 8
    else:
        assert dumped == text
        assert json.loads(dumped) == metadata


def _depth(value: object) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


def test_deep_metadata_is_refused_without_recursion_errors() -> None:
    """Nesting 100,000 levels deep is a clear error, not a RecursionError."""
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(100_000):
        node["a"] = {}
        node = node["a"]
    with pytest.raises(ValidationError, match="nested"):
        policy.dump_metadata(deep)


def test_non_json_metadata_is_refused() -> None:
    """NaN, infinity, non-string keys and arbitrary objects are not JSON."""
    for bad in ({"x": float("nan")}, {"x": float("-inf")}, {1: "a"}, {"x": object()}):
        with pytest.raises(ValidationError):
            policy.dump_metadata(bad)  # type: ignore[arg-type]
