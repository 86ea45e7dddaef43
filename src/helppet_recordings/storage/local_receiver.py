"""The HTTP side of LocalStorage: receive POST uploads and serve signed downloads.

Framework-agnostic: an adapter routes two requests here and copies the answer
back, whatever the framework.

- ``POST {base_url}/upload``: give :meth:`LocalUploadReceiver.receive_async`
  (ASGI frameworks) or :meth:`LocalUploadReceiver.receive` (WSGI, threads) the
  request's ``Content-Type`` header and its body as an iterator of chunks.
- ``GET`` or ``HEAD {base_url}/download/{key}``: give :func:`serve_download`
  the key, the query parameters and the ``Range`` header.

Both return a :class:`LocalResponse`: a status, headers, and a body or a
stream of chunks to send.

An upload is parsed as it streams in, as S3 does it: the form fields must come
before the ``file`` part; when the file part begins, the fields are checked
against the signed policy (signature, expiry, bucket, key, content type, no
extra fields) and only then is a byte written, to a temporary file under the
storage root, while its size is checked against the policy's maximum and its
MD5 and SHA-256 are computed. Once the part is complete the file is flushed
and moved into place atomically. Fields after the file are ignored. Any
refusal answers with S3's status and XML error document and leaves nothing on
disk. Memory stays bounded by the batch size, whatever the upload size.

Needs ``python-multipart`` (the ``fastapi`` extra).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import enum
import logging
import secrets
from collections.abc import AsyncIterable, Iterable, Iterator, Mapping
from typing import IO, Final
from xml.sax.saxutils import escape

import attrs

from helppet_recordings.errors import MissingDependencyError
from helppet_recordings.models import StoredObject
from helppet_recordings.storage.local import LocalStorage, LocalStorageRefusal, StagedUpload

try:
    from python_multipart.exceptions import FormParserError
    from python_multipart.multipart import MultipartParser, parse_options_header
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingDependencyError("python-multipart", "local") from exc

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "MAX_PRE_DATA_BYTES",
    "FileChunks",
    "LocalResponse",
    "LocalUploadReceiver",
    "serve_download",
]

DEFAULT_BATCH_SIZE: Final = 1024 * 1024
"""Bytes the async receiver gathers before handing them to a worker thread."""

MAX_PRE_DATA_BYTES: Final = 20 * 1024
"""Most bytes of part headers and fields accepted before the file (S3's limit)."""

DOWNLOAD_CHUNK_SIZE: Final = 256 * 1024
"""Bytes read from disk per chunk of a download."""

_MAX_PART_HEADERS: Final = 8
_MAX_BOUNDARY_LENGTH: Final = 70  # RFC 2046
_FILE_FIELD: Final = "file"
_log = logging.getLogger(__name__)


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


class LocalUploadReceiver:
    """Receives POST uploads for one :class:`LocalStorage`; safe to share between requests."""

    def __init__(self, storage: LocalStorage, *, batch_size: int = DEFAULT_BATCH_SIZE) -> None:
        if batch_size < 1:
            msg = "batch_size must be positive"
            raise ValueError(msg)
        self._storage = storage
        self._batch_size = batch_size

    @property
    def storage(self) -> LocalStorage:
        """The storage uploads land in."""
        return self._storage

    def receive(self, content_type: str | None, body: Iterable[bytes]) -> LocalResponse:
        """Receive one upload from a synchronous body; blocks while it streams in."""
        try:
            upload = _Upload(self._storage, content_type)
        except LocalStorageRefusal as refusal:
            return _refused(refusal, body_left=True)
        exhausted = False
        try:
            chunks = iter(body)
            while not upload.complete:
                try:
                    chunk = next(chunks)
                except StopIteration:
                    exhausted = True
                    upload.end()
                    break
                except Exception as exc:
                    raise _incomplete_body() from exc
                upload.feed(bytes(chunk))
            return _stored(upload.stored)
        except LocalStorageRefusal as refusal:
            return _refused(refusal, body_left=not exhausted)
        except OSError:
            _log.exception("LocalStorage could not store an upload")
            return _refused(_internal_error(), body_left=not exhausted)
        finally:
            upload.close()

    async def receive_async(
        self, content_type: str | None, body: AsyncIterable[bytes]
    ) -> LocalResponse:
        """Receive one upload from an asynchronous body (an ASGI request stream).

        Parsing, hashing and disk writes run in the event loop's default
        executor, a batch at a time, while the next batch streams in; the event
        loop itself never blocks on the disk.
        """
        try:
            upload = _Upload(self._storage, content_type)
        except LocalStorageRefusal as refusal:
            return _refused(refusal, body_left=True)
        pump = _AsyncPump(upload, self._batch_size)
        try:
            await pump.run(body)
            return _stored(upload.stored)
        except LocalStorageRefusal as refusal:
            return _refused(refusal, body_left=not pump.exhausted)
        except OSError:
            _log.exception("LocalStorage could not store an upload")
            return _refused(_internal_error(), body_left=not pump.exhausted)
        finally:
            pump.close()


class _AsyncPump:
    """Feeds an upload from an async body, one batch in a worker thread at a time."""

    def __init__(self, upload: _Upload, batch_size: int) -> None:
        self._upload = upload
        self._batch_size = batch_size
        self._pending: asyncio.Future[None] | None = None
        self.exhausted = False

    async def run(self, body: AsyncIterable[bytes]) -> None:
        upload = self._upload
        batch: list[bytes] = []
        batched = 0
        chunks = aiter(body)
        while not upload.complete:
            try:
                chunk = await anext(chunks)
            except StopAsyncIteration:
                self.exhausted = True
                break
            except Exception as exc:
                raise _incomplete_body() from exc
            batch.append(bytes(chunk))
            batched += len(chunk)
            if batched >= self._batch_size:
                await self._wait()
                self._start(b"".join(batch))
                batch.clear()
                batched = 0
        await self._wait()
        if batch and not upload.complete:
            self._start(b"".join(batch))
            await self._wait()
        if not upload.complete:
            upload.end()

    def _start(self, data: bytes) -> None:
        loop = asyncio.get_running_loop()
        self._pending = loop.run_in_executor(None, self._upload.feed, data)

    async def _wait(self) -> None:
        if self._pending is not None:
            await self._pending
            self._pending = None

    def close(self) -> None:
        """Discard an unstored file, once the worker (if still running) is done with it."""
        pending, self._pending = self._pending, None
        if pending is not None and not pending.done():
            pending.add_done_callback(lambda future: _close_after(future, self._upload))
        else:
            self._upload.close()


def serve_download(
    storage: LocalStorage,
    key: str,
    query: Mapping[str, str],
    *,
    range_header: str | None = None,
    chunk_size: int = DOWNLOAD_CHUNK_SIZE,
) -> LocalResponse:
    """Answer a GET of a signed download URL: the object's bytes, or the S3 error.

    ``key`` is the URL path after ``/download/``, percent-decoded; ``query``
    its query parameters. Serves the signed content type and an attachment
    disposition naming the signed filename; honours a single ``bytes=`` range
    (206, or 416 when unsatisfiable). A tampered or expired URL answers 403,
    a missing object 404.
    """
    try:
        grant = storage.verify_download(key, query)
    except LocalStorageRefusal as refusal:
        return _refused(refusal, body_left=False)
    opened = storage.open_object(grant.key)
    if opened is None:
        return _refused(
            LocalStorageRefusal(404, "NoSuchKey", "The specified key does not exist."),
            body_left=False,
        )
    handle, info = opened
    headers = {
        "Content-Type": grant.content_type,
        "Content-Disposition": grant.content_disposition,
        "Accept-Ranges": "bytes",
        "Cache-Control": "private, max-age=0",
        "X-Content-Type-Options": "nosniff",
    }
    if info.etag:
        headers["ETag"] = f'"{info.etag}"'
    if info.last_modified is not None:
        headers["Last-Modified"] = email.utils.format_datetime(
            info.last_modified.astimezone(dt.UTC), usegmt=True
        )
    wanted = _parse_range(range_header, info.size)
    if wanted is _UNSATISFIABLE:
        handle.close()
        range_refusal = LocalStorageRefusal(
            416, "InvalidRange", "The requested range is not satisfiable"
        )
        refused = _refused(range_refusal, body_left=False)
        return attrs.evolve(
            refused, headers={**refused.headers, "Content-Range": f"bytes */{info.size}"}
        )
    status = 200
    start, length = 0, info.size
    if isinstance(wanted, tuple):
        start, end = wanted
        length = end - start + 1
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end}/{info.size}"
    headers["Content-Length"] = str(length)
    try:
        stream = FileChunks(handle, start=start, length=length, chunk_size=chunk_size)
    except BaseException:
        handle.close()
        raise
    return LocalResponse(status, headers, stream=stream)


# ------------------------------------------------------------------------- the parser


class _Part(enum.Enum):
    NONE = enum.auto()
    FIELD = enum.auto()
    FILE = enum.auto()
    IGNORED = enum.auto()


class _Upload:
    """One multipart/form-data upload, fed chunk by chunk; not thread-safe (one feeder)."""

    def __init__(self, storage: LocalStorage, content_type: str | None) -> None:
        self._storage = storage
        self._fields: dict[str, str] = {}
        self._pre_data = 0
        self._header_name = bytearray()
        self._header_value = bytearray()
        self._headers: dict[str, str] = {}
        self._part = _Part.NONE
        self._field_name = ""
        self._field_value = bytearray()
        self._staged: StagedUpload | None = None
        self.stored: StoredObject | None = None
        try:
            self._parser = MultipartParser(
                _boundary(content_type),
                callbacks={
                    "on_part_begin": self._on_part_begin,
                    "on_header_field": self._on_header_field,
                    "on_header_value": self._on_header_value,
                    "on_header_end": self._on_header_end,
                    "on_headers_finished": self._on_headers_finished,
                    "on_part_data": self._on_part_data,
                    "on_part_end": self._on_part_end,
                },
                max_header_count=_MAX_PART_HEADERS,
            )
        except FormParserError as exc:
            raise _malformed() from exc

    @property
    def complete(self) -> bool:
        """Whether the file has been stored (the rest of the body is irrelevant)."""
        return self.stored is not None

    def feed(self, chunk: bytes) -> None:
        """Parse the next chunk of the body."""
        if self.stored is not None:
            return
        try:
            self._parser.write(chunk)
        except FormParserError as exc:
            raise _malformed() from exc

    def end(self) -> None:
        """Note the end of the body; raise unless the file was complete."""
        if self.stored is not None:
            return
        if self._part is _Part.FILE or self._staged is not None:
            raise _incomplete_body()
        raise LocalStorageRefusal(
            400, "InvalidArgument", "POST requires exactly one file upload per request."
        )

    def close(self) -> None:
        """Discard a file that was not stored."""
        staged, self._staged = self._staged, None
        if staged is not None:
            staged.discard()

    # Parser callbacks. Everything after the stored file is ignored.

    def _count(self, size: int) -> None:
        self._pre_data += size
        if self._pre_data > MAX_PRE_DATA_BYTES:
            raise LocalStorageRefusal(
                400,
                "MaxPostPreDataLengthExceeded",
                "Your POST request fields preceding the upload file were too large.",
            )

    def _on_part_begin(self) -> None:
        self._headers = {}
        self._header_name.clear()
        self._header_value.clear()
        self._part = _Part.NONE

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        if self.stored is None:
            self._count(end - start)
            self._header_name += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        if self.stored is None:
            self._count(end - start)
            self._header_value += data[start:end]

    def _on_header_end(self) -> None:
        if self.stored is not None:
            return
        name = self._header_name.decode("latin-1").strip().lower()
        value = self._header_value.decode("latin-1").strip()
        self._header_name.clear()
        self._header_value.clear()
        if name in self._headers:
            raise _malformed()
        self._headers[name] = value

    def _on_headers_finished(self) -> None:
        if self.stored is not None:
            self._part = _Part.IGNORED
            return
        kind, params = parse_options_header(self._headers.get("content-disposition"))
        raw_name = params.get(b"name")
        if kind != b"form-data" or raw_name is None:
            raise _malformed()
        try:
            name = raw_name.decode("utf-8").lower()
        except UnicodeDecodeError:
            raise _malformed() from None
        if name == _FILE_FIELD:
            policy = self._storage.verify_upload(self._fields)
            self._staged = self._storage.stage(policy)
            self._part = _Part.FILE
            return
        if name in self._fields:
            raise LocalStorageRefusal(
                400,
                "InvalidArgument",
                f"The POST form field {name!r} appears more than once.",
                ArgumentName=name,
            )
        self._count(len(raw_name))
        self._field_name = name
        self._field_value.clear()
        self._part = _Part.FIELD

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._part is _Part.FILE:
            assert self._staged is not None  # noqa: S101 - set together with the part kind
            self._staged.write(memoryview(data)[start:end])
        elif self._part is _Part.FIELD:
            self._count(end - start)
            self._field_value += data[start:end]

    def _on_part_end(self) -> None:
        if self._part is _Part.FIELD:
            try:
                self._fields[self._field_name] = self._field_value.decode("utf-8")
            except UnicodeDecodeError:
                raise _malformed() from None
            self._field_value.clear()
        elif self._part is _Part.FILE:
            staged, self._staged = self._staged, None
            assert staged is not None  # noqa: S101 - set together with the part kind
            try:
                self.stored = staged.commit()
            finally:
                staged.discard()
        self._part = _Part.IGNORED if self.stored is not None else _Part.NONE


# ---------------------------------------------------------------------------- helpers


_UNSATISFIABLE: Final = object()


def _parse_range(header: str | None, size: int) -> tuple[int, int] | object | None:
    """Return ``(first, last)`` of one ``bytes=`` range, ``_UNSATISFIABLE``, or None (whole).

    Other units, several ranges and malformed headers are ignored: the whole
    object is served (RFC 9110, section 14.2).
    """
    spec = _single_byte_range(header)
    if spec is None:
        return None
    first_text, last_text = spec
    if not first_text:
        suffix = int(last_text)
        first, last = max(0, size - suffix), size - 1
        satisfiable = suffix > 0 and size > 0
    else:
        first = int(first_text)
        last = min(int(last_text), size - 1) if last_text else size - 1
        satisfiable = first < size
    return (first, last) if satisfiable else _UNSATISFIABLE


def _single_byte_range(header: str | None) -> tuple[str, str] | None:
    if not header:
        return None
    unit, _, spec = header.strip().partition("=")
    first, dash, last = spec.strip().partition("-")
    first, last = first.strip(), last.strip()
    numbers_ok = all(
        not text or (text.isascii() and text.isdigit() and len(text) <= 19)
        for text in (first, last)
    )
    valid = (
        unit.strip().lower() == "bytes"
        and "," not in spec
        and dash == "-"
        and bool(first or last)
        and numbers_ok
        and (not first or not last or int(last) >= int(first))
    )
    return (first, last) if valid else None


def _boundary(content_type: str | None) -> bytes:
    kind, params = parse_options_header(content_type)
    boundary = params.get(b"boundary", b"")
    if kind != b"multipart/form-data" or not 1 <= len(boundary) <= _MAX_BOUNDARY_LENGTH:
        raise _malformed()
    return boundary


def _malformed() -> LocalStorageRefusal:
    return LocalStorageRefusal(
        400,
        "MalformedPOSTRequest",
        "The body of your POST request is not well-formed multipart/form-data.",
    )


def _incomplete_body() -> LocalStorageRefusal:
    return LocalStorageRefusal(
        400, "IncompleteBody", "The request body terminated before the file was complete."
    )


def _internal_error() -> LocalStorageRefusal:
    return LocalStorageRefusal(500, "InternalError", "We encountered an internal error.")


def _close_after(future: asyncio.Future[None], upload: _Upload) -> None:
    if not future.cancelled():
        future.exception()  # retrieved, so asyncio does not log it
    upload.close()


def _stored(stored: StoredObject | None) -> LocalResponse:
    assert stored is not None  # noqa: S101 - callers return only after the file was stored
    return LocalResponse(
        204, {"ETag": f'"{stored.etag}"', "x-amz-request-id": secrets.token_hex(8).upper()}
    )


def _refused(refusal: LocalStorageRefusal, *, body_left: bool) -> LocalResponse:
    """Build the S3 error document for ``refusal``; close the connection if the body is unread."""
    request_id = secrets.token_hex(8).upper()
    elements = [
        ("Code", refusal.code),
        ("Message", refusal.message),
        *refusal.extra.items(),
        ("RequestId", request_id),
    ]
    inner = "".join(f"<{name}>{escape(value)}</{name}>" for name, value in elements)
    body = f'<?xml version="1.0" encoding="UTF-8"?>\n<Error>{inner}</Error>'.encode()
    headers = {
        "Content-Type": "application/xml",
        "Content-Length": str(len(body)),
        "x-amz-request-id": request_id,
    }
    if body_left:
        headers["Connection"] = "close"
    return LocalResponse(refusal.status, headers, body)
