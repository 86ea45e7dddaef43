"""Serving signed download URLs: headers, expiry, tampering, ranges."""

from __future__ import annotations

import hashlib
import urllib.parse
from pathlib import Path

import pytest

from helppet_recordings.storage.local import (
    LocalStorage,
    serve_download,
)
from helppet_recordings.testing.storage_contract import AUDIO
from tests.support.local_forms import (
    KEY,
    FakeClock,
    encode_form,
    error_code,
    get_download,
    make_storage,
    make_ticket,
    read_stream,
    receive,
)

# ------------------------------------------------------------------------- downloads


@pytest.fixture
def stored(tmp_path: Path) -> tuple[LocalStorage, FakeClock]:
    """A storage on a fake clock holding ``AUDIO`` at ``KEY``."""
    clock = FakeClock()
    storage = make_storage(tmp_path, clock=clock)
    content_type, body = encode_form(make_ticket(storage).fields.items(), AUDIO)
    assert receive(storage, content_type, [body]).status == 204
    return storage, clock


def test_download_serves_signed_type_and_name(stored: tuple[LocalStorage, FakeClock]) -> None:
    """The response carries the signed type, an attachment name, length and ETag."""
    storage, _ = stored
    url = storage.create_download_url(
        key=KEY, expires_in=60, content_type="audio/mp4", filename="Bello « visit ».m4a"
    )
    response = get_download(storage, url)
    assert response.status == 200
    assert read_stream(response) == AUDIO
    assert response.headers["Content-Type"] == "audio/mp4"
    assert response.headers["Cache-Control"] == "private, no-store"
    assert response.headers["Content-Length"] == str(len(AUDIO))
    assert response.headers["ETag"] == f'"{hashlib.md5(AUDIO).hexdigest()}"'  # noqa: S324
    assert (
        "filename*=UTF-8''Bello%20%C2%AB%20visit%20%C2%BB.m4a"
        in response.headers["Content-Disposition"]
    )


def test_download_url_expires(stored: tuple[LocalStorage, FakeClock]) -> None:
    """A download URL works until its expiry and is refused after it."""
    storage, clock = stored
    url = storage.create_download_url(
        key=KEY, expires_in=30, content_type="audio/mp4", filename="a.m4a"
    )
    clock.now += 30
    read_stream(get_download(storage, url))
    clock.now += 1
    response = get_download(storage, url)
    assert (response.status, error_code(response)) == (403, "AccessDenied")
    assert b"Request has expired" in response.body


@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("ct", "text/html"),
        ("fn", "evil.html"),
        ("expires", "9999999999"),
        ("sig", "0" * 64),
        ("sig", "é" * 64),
        ("expires", "12x"),
    ],
)
def test_tampered_download_parameters_are_refused(
    stored: tuple[LocalStorage, FakeClock], param: str, value: str
) -> None:
    """Changing the type, name, expiry or signature of a download URL is refused."""
    storage, _ = stored
    url = storage.create_download_url(
        key=KEY, expires_in=60, content_type="audio/mp4", filename="a.m4a"
    )
    parts = urllib.parse.urlsplit(url)
    query = dict(urllib.parse.parse_qsl(parts.query))
    query[param] = value
    response = serve_download(storage, KEY, query)
    assert response.status == 403
    assert response.stream is None


def test_download_without_parameters_is_refused(stored: tuple[LocalStorage, FakeClock]) -> None:
    """A bare download path is not a grant."""
    storage, _ = stored
    response = serve_download(storage, KEY, {})
    assert (response.status, error_code(response)) == (403, "AccessDenied")


def test_download_of_deleted_object_is_404(stored: tuple[LocalStorage, FakeClock]) -> None:
    """A valid URL to an object deleted since answers NoSuchKey."""
    storage, _ = stored
    url = storage.create_download_url(
        key=KEY, expires_in=60, content_type="audio/mp4", filename="a.m4a"
    )
    storage.delete(KEY)
    response = get_download(storage, url)
    assert (response.status, error_code(response)) == (404, "NoSuchKey")


@pytest.mark.parametrize(
    ("header", "status", "expected"),
    [
        ("bytes=0-9", 206, AUDIO[:10]),
        ("bytes=100-", 206, AUDIO[100:]),
        ("bytes=-16", 206, AUDIO[-16:]),
        (f"bytes=10-{10**9}", 206, AUDIO[10:]),
        ("bytes=0-1,5-6", 200, AUDIO),
        ("items=0-1", 200, AUDIO),
        ("bytes=9-3", 200, AUDIO),
        ("bytes=abc", 200, AUDIO),
    ],
)
def test_ranges(
    stored: tuple[LocalStorage, FakeClock], header: str, status: int, expected: bytes
) -> None:
    """Single byte ranges get 206; other Range headers are ignored and the whole file sent."""
    storage, _ = stored
    url = storage.create_download_url(
        key=KEY, expires_in=60, content_type="audio/mp4", filename="a.m4a"
    )
    response = get_download(storage, url, header)
    assert response.status == status
    assert read_stream(response) == expected
    assert response.headers["Content-Length"] == str(len(expected))


@pytest.mark.parametrize("header", [f"bytes={len(AUDIO)}-", "bytes=-0"])
def test_unsatisfiable_range_is_416(stored: tuple[LocalStorage, FakeClock], header: str) -> None:
    """A range starting past the end is 416 with the object's size."""
    storage, _ = stored
    url = storage.create_download_url(
        key=KEY, expires_in=60, content_type="audio/mp4", filename="a.m4a"
    )
    response = get_download(storage, url, header)
    assert response.status == 416
    assert response.headers["Content-Range"] == f"bytes */{len(AUDIO)}"
    assert response.stream is None


def test_unread_download_can_be_closed(stored: tuple[LocalStorage, FakeClock]) -> None:
    """A download that is never sent (HEAD, client gone) releases its file on close."""
    storage, _ = stored
    url = storage.create_download_url(
        key=KEY, expires_in=60, content_type="audio/mp4", filename="a.m4a"
    )
    response = get_download(storage, url)
    response.close()
    response.close()
    assert response.stream is not None
    assert list(response.stream) == []
