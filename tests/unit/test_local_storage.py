"""LocalStorage: the storage contract over HTTP, signed tickets, paths, streaming, atomicity."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import time
import tracemalloc
import urllib.parse
from collections.abc import AsyncIterator, Iterable, Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helppet_recordings.models import UploadTicket
from helppet_recordings.ports import RecordingStorage
from helppet_recordings.storage.local import (
    LocalResponse,
    LocalStorage,
    LocalUploadReceiver,
    check_key,
    serve_download,
)
from helppet_recordings.testing.storage_contract import AUDIO, HttpStorageContract, PutObject
from tests.support.asgi_server import ServerThread
from tests.support.local_asgi import LocalStorageApp

SECRET = "unit-test-secret-0123456789"
KEY = "recordings/u/ctx/a.m4a"
MiB = 1024 * 1024


class FakeClock:
    """Unix time that only moves when told to."""

    def __init__(self, now: float = 1_795_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def http_app() -> Iterator[tuple[LocalStorageApp, str]]:
    """A bare ASGI app around the receiver, served by uvicorn on 127.0.0.1."""
    app = LocalStorageApp()
    with ServerThread(app) as server:
        yield app, server.base_url


def _storage(root: Path, base_url: str = "http://127.0.0.1:9", **kwargs: object) -> LocalStorage:
    return LocalStorage(root, base_url, SECRET, **kwargs)  # type: ignore[arg-type]


def _encode(
    fields: Iterable[tuple[str, str]], body: bytes, *, after: Iterable[tuple[str, str]] = ()
) -> tuple[str, bytes]:
    """A multipart body: ``fields``, the file, then ``after``; returns (content type, bytes)."""
    boundary = "----helppet-test-boundary"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="r.m4a"\r\n'
        "Content-Type: audio/mp4\r\n\r\n".encode()
        + body
        + b"\r\n"
    )
    parts.extend(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in after
    )
    parts.append(f"--{boundary}--\r\n".encode())
    return f"multipart/form-data; boundary={boundary}", b"".join(parts)


def _chunks(data: bytes, size: int = 7) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def _files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def _ticket(storage: LocalStorage, *, key: str = KEY, max_size: int = 10_000) -> UploadTicket:
    return storage.create_upload(
        key=key, content_type="audio/mp4", max_size=max_size, expires_in=600
    )


def _receive(
    storage: LocalStorage, content_type: str | None, body: Iterable[bytes]
) -> LocalResponse:
    return LocalUploadReceiver(storage).receive(content_type, body)


def _error_code(response: LocalResponse) -> str:
    text = response.body.decode()
    return text.split("<Code>", 1)[1].split("</Code>", 1)[0]


def _download(storage: LocalStorage, url: str, range_header: str | None = None) -> LocalResponse:
    parts = urllib.parse.urlsplit(url)
    key = urllib.parse.unquote(parts.path.split("/download/", 1)[1])
    query = dict(urllib.parse.parse_qsl(parts.query))
    return serve_download(storage, key, query, range_header=range_header)


def _read(response: LocalResponse) -> bytes:
    assert response.stream is not None
    return b"".join(response.stream)


class TestLocalStorage(HttpStorageContract):
    signature_field = "signature"

    @pytest.fixture
    def storage(
        self, tmp_path: Path, http_app: tuple[LocalStorageApp, str]
    ) -> Iterator[RecordingStorage]:
        """A fresh LocalStorage in tmp_path, served over HTTP by the module's server."""
        app, base_url = http_app
        app.storage = LocalStorage(tmp_path / "store", base_url, SECRET)
        yield app.storage
        app.storage = None

    @pytest.fixture
    def put_object(self, storage: RecordingStorage) -> PutObject:
        """Store bytes through the receiver, as a finished upload would."""
        assert isinstance(storage, LocalStorage)

        def put(key: str, body: bytes, content_type: str) -> None:
            ticket = storage.create_upload(
                key=key, content_type=content_type, max_size=len(body), expires_in=60
            )
            content, encoded = _encode(ticket.fields.items(), body)
            response = _receive(storage, content, [encoded])
            assert response.status == 204, response.body

        return put

    def test_head_after_http_upload_reports_sidecar(self, storage: RecordingStorage) -> None:
        """An HTTP upload writes the bytes and a sidecar with MD5 and SHA-256."""
        assert isinstance(storage, LocalStorage)
        ticket = self.ticket(storage, "sidecar.m4a")
        response = self.post(ticket, AUDIO)
        assert response.status_code == 204
        assert response.headers["etag"] == f'"{hashlib.md5(AUDIO).hexdigest()}"'  # noqa: S324
        data = storage.root / "objects" / ticket.key
        meta = json.loads((storage.root / "meta" / f"{ticket.key}.json").read_text())
        assert data.read_bytes() == AUDIO
        assert meta["sha256"] == hashlib.sha256(AUDIO).hexdigest()
        assert (meta["content_type"], meta["size"]) == ("audio/mp4", len(AUDIO))

    def test_head_request_of_download_url_sends_headers_only(
        self, storage: RecordingStorage
    ) -> None:
        """HEAD of a download URL answers the length and type without a body."""
        ticket = self.ticket(storage, "headreq.m4a")
        assert self.post(ticket, AUDIO).is_success
        url = storage.create_download_url(
            key=ticket.key, expires_in=60, content_type="audio/mp4", filename="a.m4a"
        )
        response = httpx.head(url, timeout=10)
        assert response.status_code == 200
        assert response.headers["content-length"] == str(len(AUDIO))
        assert response.content == b""

    def test_range_request_over_http(self, storage: RecordingStorage) -> None:
        """A player's Range request gets 206 and exactly those bytes."""
        ticket = self.ticket(storage, "range.m4a")
        assert self.post(ticket, AUDIO).is_success
        url = storage.create_download_url(
            key=ticket.key, expires_in=60, content_type="audio/mp4", filename="a.m4a"
        )
        response = httpx.get(url, headers={"Range": "bytes=10-19"}, timeout=10)
        assert response.status_code == 206
        assert response.content == AUDIO[10:20]
        assert response.headers["content-range"] == f"bytes 10-19/{len(AUDIO)}"

    def test_path_traversal_in_download_url_is_refused(
        self, storage: RecordingStorage, tmp_path: Path
    ) -> None:
        """Dot segments and encoded slashes in a download path never read outside the root."""
        secret_file = tmp_path / "outside.txt"
        secret_file.write_bytes(b"top secret")
        ticket = self.ticket(storage, "trav.m4a")
        assert self.post(ticket, AUDIO).is_success
        url = storage.create_download_url(
            key=ticket.key, expires_in=60, content_type="audio/mp4", filename="a.m4a"
        )
        base, query = url.split("?", 1)
        prefix = base.split("/download/", 1)[0]
        for path in (
            "../../outside.txt",
            "..%2F..%2F..%2Foutside.txt",
            "%2e%2e/%2e%2e/outside.txt",
        ):
            response = httpx.get(f"{prefix}/download/{path}?{query}", timeout=10)
            assert response.status_code in {403, 404}
            assert b"top secret" not in response.content

    def test_oversize_stream_is_cut_off_early(self, storage: RecordingStorage) -> None:
        """A 40 MB upload against a 64 KiB limit is refused without reading all of it."""
        ticket = self.ticket(storage, "huge.m4a")
        content_type, head = _encode(ticket.fields.items(), b"")
        prefix = head[: head.index(b"audio/mp4\r\n\r\n") + len(b"audio/mp4\r\n\r\n")]
        sent = 0

        def body() -> Iterator[bytes]:
            nonlocal sent
            yield prefix
            for _ in range(40 * 16):
                sent += 64 * 1024
                yield b"a" * (64 * 1024)

        started = time.monotonic()
        try:
            response = httpx.post(
                ticket.url, content=body(), headers={"Content-Type": content_type}, timeout=30
            )
        except httpx.TransportError:
            pass  # the server may close before the client finishes sending; S3 does too
        else:
            assert response.status_code == 400
            assert b"EntityTooLarge" in response.content
        assert time.monotonic() - started < 20
        assert storage.head(ticket.key) is None
        assert isinstance(storage, LocalStorage)
        assert _files_under(storage.root) == []


# ----------------------------------------------------------------------- construction


@pytest.mark.parametrize("secret", [None, "", "short", b"0123456789abcde", 12345])
def test_secret_must_be_long_enough(tmp_path: Path, secret: object) -> None:
    """A missing, short or non-text secret is refused."""
    with pytest.raises(ValueError, match="secret"):
        LocalStorage(tmp_path, secret=secret)  # type: ignore[arg-type]


def test_bytes_secret_and_defaults(tmp_path: Path) -> None:
    """A 16-byte secret works; the default base URL and bucket are the documented ones."""
    storage = LocalStorage(tmp_path, secret=b"0123456789abcdef")
    assert storage.bucket == "local"
    assert storage.upload_url == "http://127.0.0.1:8000/local-storage/upload"
    assert storage.object_url(KEY) == f"local://local/{KEY}"
    assert {p.name for p in tmp_path.iterdir()} == {"objects", "meta", ".incoming"}


def test_stale_staging_files_are_purged(tmp_path: Path) -> None:
    """Temporary files a crashed process left for over a day are removed at start-up."""
    _storage(tmp_path)
    old = tmp_path / ".incoming" / "dead.part"
    young = tmp_path / ".incoming" / "live.part"
    old.write_bytes(b"x")
    young.write_bytes(b"y")
    os.utime(old, (time.time() - 2 * 86400,) * 2)
    _storage(tmp_path)
    assert not old.exists()
    assert young.exists()


# ---------------------------------------------------------------------- signed tickets


def test_ticket_policy_is_signed_json(tmp_path: Path) -> None:
    """The policy names bucket, key, type, size range and expiry; the signature is its HMAC."""
    clock = FakeClock()
    storage = _storage(tmp_path, clock=clock)
    ticket = _ticket(storage, max_size=4321)
    assert set(ticket.fields) == {"key", "Content-Type", "policy", "signature"}
    policy_text = ticket.fields["policy"]
    document = json.loads(base64.urlsafe_b64decode(policy_text + "=" * (-len(policy_text) % 4)))
    assert document["bucket"] == "local"
    assert (document["key"], document["content_type"]) == (KEY, "audio/mp4")
    assert (document["min"], document["max"]) == (1, 4321)
    assert document["exp"] == int(clock.now) + 600
    assert document["expiration"].startswith("2026-11-18T")
    expected = hmac.new(
        SECRET.encode(), b"helppet-local-upload-v1\n" + policy_text.encode(), hashlib.sha256
    ).hexdigest()
    assert ticket.fields["signature"] == expected


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"max_size": 0}, "max_size"),
        ({"expires_in": 0}, "expires_in"),
        ({"content_type": "audio/mp4\r\nX-Evil: 1"}, "content_type"),
        ({"key": "../escape.m4a"}, "segment"),
    ],
)
def test_create_upload_rejects_nonsense(
    tmp_path: Path, kwargs: dict[str, object], problem: str
) -> None:
    """Unsafe keys, header injection and non-positive limits are programming errors."""
    arguments: dict[str, object] = {
        "key": KEY,
        "content_type": "audio/mp4",
        "max_size": 10,
        "expires_in": 60,
        **kwargs,
    }
    with pytest.raises(ValueError, match=problem):
        _storage(tmp_path).create_upload(**arguments)  # type: ignore[arg-type]


def test_ticket_from_another_secret_is_refused(tmp_path: Path) -> None:
    """A ticket signed with another secret does not verify."""
    storage = _storage(tmp_path)
    other = LocalStorage(tmp_path / "other", secret="another-secret-0123456789")
    content_type, body = _encode(_ticket(other).fields.items(), AUDIO[:100])
    response = _receive(storage, content_type, [body])
    assert (response.status, _error_code(response)) == (403, "SignatureDoesNotMatch")
    assert _files_under(tmp_path / "objects") == []


def test_ticket_for_another_bucket_is_refused(tmp_path: Path) -> None:
    """Two storages sharing a secret do not accept each other's tickets."""
    storage = _storage(tmp_path)
    other = _storage(tmp_path / "b", bucket="other")
    content_type, body = _encode(_ticket(other).fields.items(), AUDIO[:100])
    response = _receive(storage, content_type, [body])
    assert (response.status, _error_code(response)) == (403, "AccessDenied")
    assert b"$bucket" in response.body


def test_expiry_is_enforced_by_the_clock(tmp_path: Path) -> None:
    """A ticket works up to its expiry second and is refused after it."""
    clock = FakeClock()
    storage = _storage(tmp_path, clock=clock)
    ticket = storage.create_upload(key=KEY, content_type="audio/mp4", max_size=99, expires_in=5)
    content_type, body = _encode(ticket.fields.items(), b"abc")
    clock.now += 6
    response = _receive(storage, content_type, [body])
    assert (response.status, _error_code(response)) == (403, "AccessDenied")
    assert b"Policy expired" in response.body
    clock.now -= 1
    assert _receive(storage, content_type, [body]).status == 204


# ------------------------------------------------------------------------ key safety


UNSAFE_KEYS = [
    "",
    "/etc/passwd",
    "../escape.m4a",
    "recordings/../../escape.m4a",
    "recordings/./a.m4a",
    "recordings//a.m4a",
    "recordings/a.m4a/",
    "recordings\\..\\a.m4a",
    "recordings/a\x00.m4a",
    "recordings/a\n.m4a",
    "recordings/.hidden",
    "recordings/a\u202egpj.m4a",
    "a" * 1025,
    "a/" + "b" * 256,
]


@pytest.mark.parametrize("key", UNSAFE_KEYS)
def test_unsafe_keys_are_refused_everywhere(tmp_path: Path, key: str) -> None:
    """Absolute, dot, empty-segment, backslash and control-character keys reach no path."""
    storage = _storage(tmp_path)
    with pytest.raises(ValueError, match="key"):
        check_key(key)
    with pytest.raises(ValueError, match="key"):
        storage.create_upload(key=key, content_type="audio/mp4", max_size=9, expires_in=9)
    with pytest.raises(ValueError, match="key"):
        storage.create_download_url(key=key, expires_in=9, content_type="audio/mp4", filename="a")
    assert storage.head(key) is None
    storage.delete(key)
    assert storage.open_object(key) is None
    assert list(storage.iter_objects(key)) == []


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(["..", ".", "", "a", "b.m4a", "/", "\\", "~", "%2e", "\x00", "é", " "]),
        min_size=1,
        max_size=8,
    )
)
def test_any_key_that_passes_stays_inside_the_root(pieces: list[str]) -> None:
    """Whatever a key is made of, if it is accepted its path lies inside the root."""
    key = "/".join(pieces)
    root = Path("/srv/store").resolve()
    try:
        segments = check_key(key)
    except ValueError:
        return
    path = (root / "objects").joinpath(*segments)
    assert os.path.normpath(path).startswith(str(root / "objects") + os.sep)
    assert ".." not in segments


def test_symlink_out_of_the_root_is_not_followed(tmp_path: Path) -> None:
    """A symbolic link planted under the root cannot be used to write or read outside it."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "a.m4a").write_bytes(b"outside")
    storage = _storage(tmp_path / "store")
    (storage.root / "objects" / "recordings").symlink_to(outside, target_is_directory=True)
    key = "recordings/a.m4a"
    assert storage.head(key) is None
    assert storage.open_object(key) is None
    content_type, body = _encode(_ticket(storage, key=key).fields.items(), b"new bytes")
    response = _receive(storage, content_type, [body])
    assert response.status == 403
    assert (outside / "a.m4a").read_bytes() == b"outside"


# ------------------------------------------------------------------ hostile multipart


def _assert_refused(storage: LocalStorage, response: LocalResponse, status: int, code: str) -> None:
    assert (response.status, _error_code(response)) == (status, code), response.body
    assert response.headers["Content-Type"] == "application/xml"
    assert _files_under(storage.root) == []


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "",
        "application/json",
        "multipart/form-data",
        "multipart/form-data; boundary=",
        "multipart/form-data; boundary=" + "x" * 71,
        "multipart/mixed; boundary=abc",
    ],
)
def test_bad_content_type_header_is_malformed(tmp_path: Path, content_type: str | None) -> None:
    """Anything but multipart/form-data with a sane boundary is refused before reading."""
    storage = _storage(tmp_path)
    response = _receive(storage, content_type, [b"whatever"])
    _assert_refused(storage, response, 400, "MalformedPOSTRequest")
    assert response.headers["Connection"] == "close"


@pytest.mark.parametrize(
    "body",
    [
        b"garbage that is not multipart at all",
        b"--wrong-boundary\r\n\r\n",
        b"------helppet-test-boundary\r\nno-colon-header\r\n\r\nx",
        b"------helppet-test-boundary\r\nContent-Disposition: attachment\r\n\r\nx\r\n",
        b'------helppet-test-boundary\r\nContent-Disposition: form-data; filename="x"\r\n\r\nx\r\n',
        b"------helppet-test-boundary\r\nX-A: 1\r\nX-A: 2\r\n\r\nx\r\n",
        b"------helppet-test-boundary\r\n"
        + b"".join(f"X-{i}: v\r\n".encode() for i in range(9))
        + b"\r\nx\r\n",
    ],
)
def test_garbage_bodies_are_malformed(tmp_path: Path, body: bytes) -> None:
    """Bodies that are not well-formed multipart are refused with 400 and store nothing."""
    storage = _storage(tmp_path)
    content_type = "multipart/form-data; boundary=----helppet-test-boundary"
    response = _receive(storage, content_type, _chunks(body))
    assert response.status == 400
    assert _error_code(response) in {"MalformedPOSTRequest", "InvalidArgument"}
    assert _files_under(storage.root) == []


def test_missing_file_is_refused(tmp_path: Path) -> None:
    """Fields without a file part are refused: S3 needs exactly one file."""
    storage = _storage(tmp_path)
    boundary = "----helppet-test-boundary"
    body = (
        "".join(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'
            for k, v in _ticket(storage).fields.items()
        )
        + f"--{boundary}--\r\n"
    )
    response = _receive(storage, f"multipart/form-data; boundary={boundary}", [body.encode()])
    _assert_refused(storage, response, 400, "InvalidArgument")
    assert b"exactly one file" in response.body


def test_empty_body_is_refused(tmp_path: Path) -> None:
    """A body with nothing in it is refused."""
    storage = _storage(tmp_path)
    response = _receive(storage, "multipart/form-data; boundary=abc", [])
    _assert_refused(storage, response, 400, "InvalidArgument")


def test_duplicate_fields_are_refused(tmp_path: Path) -> None:
    """A field sent twice (whatever its case) is refused, so no value can shadow another."""
    storage = _storage(tmp_path)
    fields = list(_ticket(storage).fields.items())
    content_type, body = _encode([*fields, ("KEY", "recordings/u/ctx/other.m4a")], AUDIO[:50])
    response = _receive(storage, content_type, [body])
    _assert_refused(storage, response, 400, "InvalidArgument")


@pytest.mark.parametrize("missing", ["key", "policy", "signature"])
def test_missing_required_field_is_refused(tmp_path: Path, missing: str) -> None:
    """The key, the policy and the signature must all precede the file."""
    storage = _storage(tmp_path)
    fields = [(k, v) for k, v in _ticket(storage).fields.items() if k != missing]
    content_type, body = _encode(fields, AUDIO[:50])
    _assert_refused(storage, _receive(storage, content_type, [body]), 400, "InvalidArgument")


def test_missing_content_type_field_breaks_the_policy(tmp_path: Path) -> None:
    """Without the Content-Type field the policy's type condition fails."""
    storage = _storage(tmp_path)
    fields = [(k, v) for k, v in _ticket(storage).fields.items() if k != "Content-Type"]
    content_type, body = _encode(fields, AUDIO[:50])
    _assert_refused(storage, _receive(storage, content_type, [body]), 403, "AccessDenied")


def test_fields_after_the_file_do_not_count(tmp_path: Path) -> None:
    """Fields after the file are ignored, as S3 does; required ones must come first."""
    storage = _storage(tmp_path)
    fields = list(_ticket(storage).fields.items())
    content_type, body = _encode([], AUDIO[:50], after=fields)
    _assert_refused(storage, _receive(storage, content_type, [body]), 400, "InvalidArgument")
    content_type, body = _encode(fields, AUDIO[:50], after=[("key", "elsewhere/x.m4a")])
    assert _receive(storage, content_type, [body]).status == 204
    assert storage.head(KEY) is not None
    assert storage.head("elsewhere/x.m4a") is None


def test_extra_fields_are_refused_unless_ignorable(tmp_path: Path) -> None:
    """A field the policy does not cover is refused; ``x-ignore-`` fields are allowed."""
    storage = _storage(tmp_path)
    fields = list(_ticket(storage).fields.items())
    content_type, body = _encode([*fields, ("x-amz-meta-owner", "mallory")], AUDIO[:50])
    response = _receive(storage, content_type, [body])
    _assert_refused(storage, response, 403, "AccessDenied")
    assert b"Extra input fields: x-amz-meta-owner" in response.body
    content_type, body = _encode([*fields, ("x-ignore-trace", "1")], AUDIO[:50])
    assert _receive(storage, content_type, [body]).status == 204


def test_huge_fields_before_the_file_are_refused(tmp_path: Path) -> None:
    """More than 20 KiB of fields before the file is refused without buffering it all."""
    storage = _storage(tmp_path)
    content_type, body = _encode([("x-ignore-pad", "p" * (21 * 1024))], AUDIO[:50])
    response = _receive(storage, content_type, _chunks(body, 1024))
    _assert_refused(storage, response, 400, "MaxPostPreDataLengthExceeded")


def test_truncated_body_is_incomplete(tmp_path: Path) -> None:
    """A body that stops inside the file stores nothing and leaves no temporary file."""
    storage = _storage(tmp_path)
    content_type, body = _encode(_ticket(storage).fields.items(), AUDIO[:500])
    response = _receive(storage, content_type, [body[:-120]])
    _assert_refused(storage, response, 400, "IncompleteBody")


def test_failing_body_source_is_incomplete(tmp_path: Path) -> None:
    """A body iterator that raises (client gone) is an incomplete body, not a crash."""
    storage = _storage(tmp_path)
    content_type, body = _encode(_ticket(storage).fields.items(), AUDIO[:500])

    def broken() -> Iterator[bytes]:
        yield body[:300]
        msg = "client went away"
        raise ConnectionResetError(msg)

    response = _receive(storage, content_type, broken())
    _assert_refused(storage, response, 400, "IncompleteBody")


def test_size_limits_count_file_bytes_only(tmp_path: Path) -> None:
    """Exactly max bytes land; one more is EntityTooLarge; none is EntityTooSmall."""
    storage = _storage(tmp_path)
    fields = _ticket(storage, max_size=10).fields.items()
    for payload, code in [(b"x" * 11, "EntityTooLarge"), (b"", "EntityTooSmall")]:
        content_type, body = _encode(fields, payload)
        _assert_refused(storage, _receive(storage, content_type, [body]), 400, code)
    content_type, body = _encode(fields, b"x" * 10)
    assert _receive(storage, content_type, [body]).status == 204


def test_body_that_looks_like_a_boundary_is_kept_intact(tmp_path: Path) -> None:
    """File bytes containing CRLF and dashes, split at every offset, arrive byte-exact."""
    storage = _storage(tmp_path)
    payload = b"\r\n--\r\n------helppet-test-boundar\r\n-" * 20
    content_type, body = _encode(_ticket(storage).fields.items(), payload)
    for size in (1, 2, 3, 5, 64):
        assert _receive(storage, content_type, _chunks(body, size)).status == 204
        stored = storage.head(KEY)
        assert stored is not None
        assert (stored.size, stored.etag) == (len(payload), hashlib.md5(payload).hexdigest())  # noqa: S324


# ------------------------------------------------------------------ atomicity, memory


def test_partial_upload_is_invisible_until_complete(tmp_path: Path) -> None:
    """While the file streams in, the key holds nothing and only a staging file exists."""
    storage = _storage(tmp_path)
    content_type, body = _encode(_ticket(storage, max_size=9999).fields.items(), b"z" * 5000)
    seen: list[tuple[bool, list[str]]] = []

    def body_chunks() -> Iterator[bytes]:
        for chunk in _chunks(body, 1000):
            yield chunk
            seen.append((storage.head(KEY) is None, _files_under(storage.root)))

    assert _receive(storage, content_type, body_chunks()).status == 204
    assert seen[2][0]
    assert len(seen[2][1]) == 1
    assert seen[2][1][0].startswith(".incoming/")
    assert _files_under(storage.root) == [f"meta/{KEY}.json", f"objects/{KEY}"]


def test_overwrite_replaces_object_and_sidecar_together(tmp_path: Path) -> None:
    """A second upload to the same key replaces the bytes and the metadata as a unit."""
    storage = _storage(tmp_path)
    fields = _ticket(storage).fields.items()
    for payload in (b"first version", b"second, longer version"):
        content_type, body = _encode(fields, payload)
        assert _receive(storage, content_type, [body]).status == 204
    stored = storage.head(KEY)
    assert stored is not None
    assert stored.etag == hashlib.md5(b"second, longer version").hexdigest()  # noqa: S324


def test_data_without_matching_sidecar_is_not_an_object(tmp_path: Path) -> None:
    """Bytes whose sidecar is missing or stale (a crash mid-commit) are reported absent."""
    storage = _storage(tmp_path)
    content_type, body = _encode(_ticket(storage).fields.items(), b"payload")
    assert _receive(storage, content_type, [body]).status == 204
    (storage.root / "objects" / KEY).write_bytes(b"tampered payload")
    assert storage.head(KEY) is None
    assert list(storage.iter_objects("recordings/")) == []
    (storage.root / "meta" / f"{KEY}.json").unlink()
    assert storage.head(KEY) is None


def test_delete_prunes_empty_directories(tmp_path: Path) -> None:
    """Deleting the last object under a prefix leaves no empty directories behind."""
    storage = _storage(tmp_path)
    content_type, body = _encode(_ticket(storage).fields.items(), b"payload")
    assert _receive(storage, content_type, [body]).status == 204
    storage.delete(KEY)
    assert list((storage.root / "objects").iterdir()) == []
    assert list((storage.root / "meta").iterdir()) == []


def _streamed_body(content_type_and_head: tuple[str, bytes], size: int) -> Iterator[bytes]:
    _, head = content_type_and_head
    marker = b"audio/mp4\r\n\r\n"
    split = head.index(marker) + len(marker)
    yield head[:split]
    block = bytes(range(256)) * 256  # 64 KiB
    for _ in range(size // len(block)):
        yield block
    yield head[split:]


def test_sync_receiver_memory_is_bounded(tmp_path: Path) -> None:
    """Receiving 50 MB synchronously peaks at well under 4 MB of Python memory."""
    storage = _storage(tmp_path, fsync=False)
    size = 50 * MiB
    encoded = _encode(_ticket(storage, max_size=size).fields.items(), b"")
    tracemalloc.start()
    try:
        response = _receive(storage, encoded[0], _streamed_body(encoded, size))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert response.status == 204
    stored = storage.head(KEY)
    assert stored is not None
    assert stored.size == size
    assert peak < 4 * MiB, peak


def test_async_receiver_memory_is_bounded(tmp_path: Path) -> None:
    """Receiving 50 MB through the async pipeline peaks at a few batches of memory."""
    storage = _storage(tmp_path, fsync=False)
    size = 50 * MiB
    encoded = _encode(_ticket(storage, max_size=size).fields.items(), b"")

    async def body() -> AsyncIterator[bytes]:
        for chunk in _streamed_body(encoded, size):
            yield chunk

    async def run() -> LocalResponse:
        return await LocalUploadReceiver(storage).receive_async(encoded[0], body())

    tracemalloc.start()
    try:
        response = asyncio.run(run())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert response.status == 204
    stored = storage.head(KEY)
    assert stored is not None
    assert stored.size == size
    assert peak < 6 * MiB, peak


def test_oversize_upload_stops_reading_early(tmp_path: Path) -> None:
    """Past the maximum the receiver stops consuming the body and asks to close."""
    storage = _storage(tmp_path)
    encoded = _encode(_ticket(storage, max_size=MiB).fields.items(), b"")
    consumed = 0

    def counting() -> Iterator[bytes]:
        nonlocal consumed
        for chunk in _streamed_body(encoded, 50 * MiB):
            consumed += len(chunk)
            yield chunk

    response = _receive(storage, encoded[0], counting())
    _assert_refused(storage, response, 400, "EntityTooLarge")
    assert response.headers["Connection"] == "close"
    assert consumed < 2 * MiB


def test_async_refusal_leaves_nothing(tmp_path: Path) -> None:
    """The async path refuses like the sync one and removes its temporary file."""
    storage = _storage(tmp_path)
    encoded = _encode(_ticket(storage, max_size=3 * MiB).fields.items(), b"")

    async def body() -> AsyncIterator[bytes]:
        for chunk in _streamed_body(encoded, 8 * MiB):
            yield chunk

    async def run() -> LocalResponse:
        return await LocalUploadReceiver(storage, batch_size=256 * 1024).receive_async(
            encoded[0], body()
        )

    _assert_refused(storage, asyncio.run(run()), 400, "EntityTooLarge")


# ------------------------------------------------------------------------- downloads


@pytest.fixture
def stored(tmp_path: Path) -> tuple[LocalStorage, FakeClock]:
    """A storage on a fake clock holding ``AUDIO`` at ``KEY``."""
    clock = FakeClock()
    storage = _storage(tmp_path, clock=clock)
    content_type, body = _encode(_ticket(storage).fields.items(), AUDIO)
    assert _receive(storage, content_type, [body]).status == 204
    return storage, clock


def test_download_serves_signed_type_and_name(stored: tuple[LocalStorage, FakeClock]) -> None:
    """The response carries the signed type, an attachment name, length and ETag."""
    storage, _ = stored
    url = storage.create_download_url(
        key=KEY, expires_in=60, content_type="audio/mp4", filename="Bello « visit ».m4a"
    )
    response = _download(storage, url)
    assert response.status == 200
    assert _read(response) == AUDIO
    assert response.headers["Content-Type"] == "audio/mp4"
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
    _read(_download(storage, url))
    clock.now += 1
    response = _download(storage, url)
    assert (response.status, _error_code(response)) == (403, "AccessDenied")
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
    assert (response.status, _error_code(response)) == (403, "AccessDenied")


def test_download_of_deleted_object_is_404(stored: tuple[LocalStorage, FakeClock]) -> None:
    """A valid URL to an object deleted since answers NoSuchKey."""
    storage, _ = stored
    url = storage.create_download_url(
        key=KEY, expires_in=60, content_type="audio/mp4", filename="a.m4a"
    )
    storage.delete(KEY)
    response = _download(storage, url)
    assert (response.status, _error_code(response)) == (404, "NoSuchKey")


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
    response = _download(storage, url, header)
    assert response.status == status
    assert _read(response) == expected
    assert response.headers["Content-Length"] == str(len(expected))


@pytest.mark.parametrize("header", [f"bytes={len(AUDIO)}-", "bytes=-0"])
def test_unsatisfiable_range_is_416(stored: tuple[LocalStorage, FakeClock], header: str) -> None:
    """A range starting past the end is 416 with the object's size."""
    storage, _ = stored
    url = storage.create_download_url(
        key=KEY, expires_in=60, content_type="audio/mp4", filename="a.m4a"
    )
    response = _download(storage, url, header)
    assert response.status == 416
    assert response.headers["Content-Range"] == f"bytes */{len(AUDIO)}"
    assert response.stream is None


def test_unread_download_can_be_closed(stored: tuple[LocalStorage, FakeClock]) -> None:
    """A download that is never sent (HEAD, client gone) releases its file on close."""
    storage, _ = stored
    url = storage.create_download_url(
        key=KEY, expires_in=60, content_type="audio/mp4", filename="a.m4a"
    )
    response = _download(storage, url)
    response.close()
    response.close()
    assert response.stream is not None
    assert list(response.stream) == []


# --------------------------------------------------------------------------- listing


def _put(storage: LocalStorage, key: str, body: bytes = b"payload") -> None:
    content_type, encoded = _encode(_ticket(storage, key=key).fields.items(), body)
    assert _receive(storage, content_type, [encoded]).status == 204


def test_iter_objects_is_in_code_point_key_order(tmp_path: Path) -> None:
    """Listing follows string order even where directories and files interleave."""
    storage = _storage(tmp_path)
    keys = ["a0", "a/x", "a.b", "a-c", "a/b/c", "a/b0", "b", "a/é", "a/z", "A"]
    for key in keys:
        _put(storage, key)
    assert [obj.key for obj in storage.iter_objects("")] == sorted(keys)
    assert [obj.key for obj in storage.iter_objects("a/b")] == ["a/b/c", "a/b0"]
    assert [obj.key for obj in storage.iter_objects("a/")] == sorted(
        k for k in keys if k.startswith("a/")
    )
    assert list(storage.iter_objects("nothing/")) == []
    assert list(storage.iter_objects("../")) == []


def test_head_reports_the_sha256(tmp_path: Path) -> None:
    """HEAD gives the body's SHA-256 and its MD5 both as the ETag and as ``md5``."""
    storage = _storage(tmp_path)
    _put(storage, KEY, AUDIO)
    stored = storage.head(KEY)
    assert stored is not None
    assert stored.sha256 == hashlib.sha256(AUDIO).hexdigest()
    assert stored.md5 == hashlib.md5(AUDIO).hexdigest()  # noqa: S324
    listed = next(storage.iter_objects("recordings/"))
    assert (listed.sha256, listed.etag) == (stored.sha256, stored.etag)
