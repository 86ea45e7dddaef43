"""What the upload and download routes answer: a status, headers and a body or a stream."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator, Mapping
from typing import IO, Final
from xml.sax.saxutils import escape

import attrs

from helppet_recordings.models import StoredObject
from helppet_recordings.storage.local.refusal import LocalStorageRefusal

__all__ = ["FileChunks", "LocalResponse", "refused", "stored"]


@attrs.frozen
class LocalResponse:
    """What to answer: status, headers, and ``body`` or, for downloads, ``stream``.

    A streamed response must be consumed or :meth:`close`-d (its file is open).
    """

    status: int
    headers: Mapping[str, str]
    body: bytes = b""
    stream: FileChunks | None = None

    def close(self) -> None:
        """Release the open file of a streamed response (safe to repeat)."""
        if self.stream is not None:
            self.stream.close()


class FileChunks(Iterator[bytes]):
    """The bytes ``[start, start + length)`` of an open file, in chunks; closes it at the end."""

    def __init__(self, handle: IO[bytes], *, start: int, length: int, chunk_size: int) -> None:
        self._handle: IO[bytes] | None = handle
        self._remaining = length
        self._chunk_size = chunk_size
        handle.seek(start)

    def __iter__(self) -> FileChunks:
        return self

    def __next__(self) -> bytes:
        handle = self._handle
        if handle is None:
            raise StopIteration
        chunk = handle.read(min(self._chunk_size, self._remaining)) if self._remaining else b""
        if not chunk:
            self.close()
            raise StopIteration
        self._remaining -= len(chunk)
        return chunk

    def close(self) -> None:
        """Close the file (safe to repeat)."""
        handle, self._handle = self._handle, None
        if handle is not None:
            handle.close()

    def __del__(self) -> None:
        # A response abandoned mid-stream (client gone) still releases its file.
        self.close()


def stored(stored: StoredObject | None, *, body_left: bool = False) -> LocalResponse:
    """204 with the stored object's ETag, as S3 answers a POST upload.

    ``body_left``: the request's body did not end after the file (more than a
    closing boundary, or too slowly), so the connection is closed.
    """
    assert stored is not None  # noqa: S101 - callers return only after the file was stored
    headers = {"ETag": f'"{stored.etag}"', "x-amz-request-id": secrets.token_hex(8).upper()}
    if body_left:
        headers["Connection"] = "close"
    return LocalResponse(204, headers)


_NOT_IN_XML: Final = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
"""What XML 1.0 text cannot hold: most control characters, surrogates, U+FFFE and U+FFFF."""


def _xml_text(value: str) -> str:
    """Return ``value`` as XML text: escaped, what XML cannot hold replaced by U+FFFD.

    A client's field name may carry anything; the answer must still parse.
    """
    return escape(_NOT_IN_XML.sub("\ufffd", value))


def refused(refusal: LocalStorageRefusal, *, body_left: bool) -> LocalResponse:
    """Build the S3 error document for ``refusal``; close the connection if the body is unread."""
    request_id = secrets.token_hex(8).upper()
    elements = [
        ("Code", refusal.code),
        ("Message", refusal.message),
        *refusal.extra.items(),
        ("RequestId", request_id),
    ]
    inner = "".join(f"<{name}>{_xml_text(value)}</{name}>" for name, value in elements)
    body = f'<?xml version="1.0" encoding="UTF-8"?>\n<Error>{inner}</Error>'.encode()
    headers = {
        "Content-Type": "application/xml",
        "Content-Length": str(len(body)),
        "x-amz-request-id": request_id,
    }
    if body_left:
        headers["Connection"] = "close"
    return LocalResponse(refusal.status, headers, body)
