"""What the LocalStorage tests share: a storage, multipart bodies, and reading the answers."""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterable, Iterator
from pathlib import Path

from helppet_recordings.models import UploadTicket
from helppet_recordings.storage.local import (
    LocalResponse,
    LocalStorage,
    LocalUploadReceiver,
    serve_download,
)

SECRET = "unit-test-secret-0123456789"
KEY = "recordings/u/ctx/a.m4a"
BOUNDARY = "----helppet-test-boundary"
MiB = 1024 * 1024


class FakeClock:
    """Unix time that only moves when told to."""

    def __init__(self, now: float = 1_795_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make_storage(
    root: Path, base_url: str = "http://127.0.0.1:9", **kwargs: object
) -> LocalStorage:
    """A LocalStorage at ``root`` signing with the test secret."""
    return LocalStorage(root, base_url, SECRET, **kwargs)  # type: ignore[arg-type]


def encode_form(
    fields: Iterable[tuple[str, str]], body: bytes, *, after: Iterable[tuple[str, str]] = ()
) -> tuple[str, bytes]:
    """A multipart body: ``fields``, the file, then ``after``; returns (content type, bytes)."""
    parts = [
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields
    ]
    parts.append(
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="r.m4a"\r\n'
        "Content-Type: audio/mp4\r\n\r\n".encode()
        + body
        + b"\r\n"
    )
    parts.extend(
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in after
    )
    parts.append(f"--{BOUNDARY}--\r\n".encode())
    return f"multipart/form-data; boundary={BOUNDARY}", b"".join(parts)


def split_chunks(data: bytes, size: int = 7) -> list[bytes]:
    """``data`` cut into pieces of ``size`` bytes (the last may be shorter)."""
    return [data[i : i + size] for i in range(0, len(data), size)]


def files_under(root: Path) -> list[str]:
    """Every file under ``root``, as sorted relative paths."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def make_ticket(storage: LocalStorage, *, key: str = KEY, max_size: int = 10_000) -> UploadTicket:
    """A ten-minute ticket for an audio/mp4 upload at ``key``."""
    return storage.create_upload(
        key=key, content_type="audio/mp4", max_size=max_size, expires_in=600
    )


def receive(
    storage: LocalStorage, content_type: str | None, body: Iterable[bytes]
) -> LocalResponse:
    """Receive one upload synchronously."""
    return LocalUploadReceiver(storage).receive(content_type, body)


def error_code(response: LocalResponse) -> str:
    """The ``Code`` of an S3 error document."""
    text = response.body.decode()
    return text.split("<Code>", 1)[1].split("</Code>", 1)[0]


def assert_refused(storage: LocalStorage, response: LocalResponse, status: int, code: str) -> None:
    """The answer is the S3 error ``code`` with ``status``, and nothing is left on disk."""
    assert (response.status, error_code(response)) == (status, code), response.body
    assert response.headers["Content-Type"] == "application/xml"
    assert files_under(storage.root) == []


def get_download(storage: LocalStorage, url: str, range_header: str | None = None) -> LocalResponse:
    """Serve a signed download URL as the download route would."""
    parts = urllib.parse.urlsplit(url)
    key = urllib.parse.unquote(parts.path.split("/download/", 1)[1])
    query = dict(urllib.parse.parse_qsl(parts.query))
    return serve_download(storage, key, query, range_header=range_header)


def read_stream(response: LocalResponse) -> bytes:
    """All the bytes of a streamed response."""
    assert response.stream is not None
    return b"".join(response.stream)


def store_bytes(storage: LocalStorage, key: str, body: bytes = b"payload") -> None:
    """Upload ``body`` at ``key`` through the receiver."""
    content_type, encoded = encode_form(make_ticket(storage, key=key).fields.items(), body)
    assert receive(storage, content_type, [encoded]).status == 204


def streamed_body(content_type_and_head: tuple[str, bytes], size: int) -> Iterator[bytes]:
    """An encoded empty-file form with ``size`` bytes of file streamed in 64 KiB blocks."""
    _, head = content_type_and_head
    marker = b"audio/mp4\r\n\r\n"
    split = head.index(marker) + len(marker)
    yield head[:split]
    block = bytes(range(256)) * 256  # 64 KiB
    for _ in range(size // len(block)):
        yield block
    yield head[split:]
