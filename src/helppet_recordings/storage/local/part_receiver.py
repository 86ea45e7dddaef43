"""LocalPartReceiver: receives the part PUTs of LocalStorage's multipart uploads.

Give :meth:`LocalPartReceiver.receive_async` (ASGI frameworks) or
:meth:`LocalPartReceiver.receive` (WSGI, threads) the URL's key (the path
after ``/part/``, percent-decoded), its query, the request's
``Content-Length`` header and its body; either returns the
:class:`~helppet_recordings.storage.local.LocalResponse` to send. Standard
library only.

Before a byte of the body is read: the signature, then the expiry (403
``SignatureDoesNotMatch``, ``AccessDenied``), then the length (411
``MissingContentLength`` without ``Content-Length``, as for a chunked body;
403 ``SignatureDoesNotMatch`` for any length but the signed size), then the
upload (404 ``NoSuchUpload`` once it is completed or aborted). The body
streams into a temporary file in the upload's directory, a batch at a time
and never more than one batch in memory, with its MD5 (the part's ETag); a
body shorter or longer than the signed size is refused (400
``IncompleteBody``). A complete part replaces any earlier one of its number
in one rename, under the upload's lock, and is answered 200 with its
``ETag``. A part whose upload was completed or aborted while it arrived is
refused (404 ``NoSuchUpload``) and kept nowhere. The idle and body timeouts
of the POST receiver apply (400 ``RequestTimeout``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import secrets
import threading
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Mapping
from pathlib import Path
from typing import IO, Any

from helppet_recordings.errors import StorageError
from helppet_recordings.multipart import MAX_PART_SIZE
from helppet_recordings.storage.local.deadlines import ReceiveClock, request_timeout
from helppet_recordings.storage.local.files import (
    create_exclusive,
    os_error_summary,
    write_all,
)
from helppet_recordings.storage.local.limits import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_BODY_TIMEOUT,
    DEFAULT_IDLE_TIMEOUT,
    check_receiver_limits,
)
from helppet_recordings.storage.local.parts import PartStore, Upload
from helppet_recordings.storage.local.refusal import (
    LocalStorageRefusal,
    entity_too_large,
    incomplete_body,
    internal_error,
    signature_mismatch,
)
from helppet_recordings.storage.local.responses import LocalResponse, refused
from helppet_recordings.storage.local.signing import PartGrant
from helppet_recordings.storage.local.storage import LocalStorage

__all__ = ["LocalPartReceiver"]

_log = logging.getLogger(__name__)


class LocalPartReceiver:
    """Receives part PUTs for one :class:`LocalStorage`; safe to share between requests.

    ``idle_timeout`` is how long the client may send nothing, ``body_timeout``
    how long the whole body may take (seconds, or None for no limit);
    ``batch_size`` how many bytes are gathered before a worker thread writes them.
    """

    def __init__(
        self,
        storage: LocalStorage,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT,
        body_timeout: float | None = DEFAULT_BODY_TIMEOUT,
    ) -> None:
        check_receiver_limits(batch_size, idle_timeout=idle_timeout, body_timeout=body_timeout)
        self._storage = storage
        self._batch_size = batch_size
        self._limits = (idle_timeout, body_timeout)

    @property
    def storage(self) -> LocalStorage:
        """The storage the parts are kept by."""
        return self._storage

    def check(self, key: str, query: Mapping[str, str], content_length: str | None) -> PartGrant:
        """Check a part PUT's URL and ``Content-Length`` without touching the disk or the body.

        Raises :class:`LocalStorageRefusal` as the module describes.
        """
        grant = self._storage.verify_part(key, query)
        if content_length is None:
            raise LocalStorageRefusal(
                411, "MissingContentLength", "You must provide the Content-Length HTTP header."
            )
        text = content_length.strip()
        if not (text.isascii() and text.isdigit() and len(text) <= 19) or int(text) != grant.size:
            raise signature_mismatch(SignedContentLength=str(grant.size))
        if grant.size > MAX_PART_SIZE:
            raise entity_too_large(MAX_PART_SIZE)
        return grant

    def receive(
        self,
        key: str,
        query: Mapping[str, str],
        content_length: str | None,
        body: Iterable[bytes],
    ) -> LocalResponse:
        """Receive one part from a synchronous body; blocks while it streams in."""
        part: _PartFile | None = None
        exhausted = False
        try:
            grant = self.check(key, query, content_length)
            part = _PartFile(self._storage.part_store, grant)
            part.open()
            clock = ReceiveClock(self._limits[0], None, self._limits[1])
            chunks = iter(body)
            while True:
                try:
                    chunk = next(chunks)
                except StopIteration:
                    exhausted = True
                    break
                except Exception as exc:
                    raise incomplete_body() from exc
                clock.check(file_started=True)
                part.write(bytes(chunk))
                clock.fed()
            return part.finish_with(b"")
        except LocalStorageRefusal as refusal:
            return refused(refusal, body_left=not exhausted)
        except OSError as exc:
            _log.error("LocalStorage could not store a part: %s", os_error_summary(exc))
            return refused(internal_error(), body_left=not exhausted)
        finally:
            if part is not None:
                part.discard()

    async def receive_async(
        self,
        key: str,
        query: Mapping[str, str],
        content_length: str | None,
        body: AsyncIterable[bytes],
    ) -> LocalResponse:
        """Receive one part from an asynchronous body (an ASGI request stream).

        The checks run in the event loop (no disk, no body); the file is
        opened, written, placed (or removed) in the loop's default executor,
        one batch while the next streams in.
        """
        try:
            grant = self.check(key, query, content_length)
        except LocalStorageRefusal as refusal:
            return refused(refusal, body_left=True)
        loop = asyncio.get_running_loop()
        part = _PartFile(self._storage.part_store, grant)
        pending: asyncio.Future[Any] | None = None
        exhausted = False
        try:
            pending = loop.run_in_executor(None, part.open)
            await pending
            clock = ReceiveClock(self._limits[0], None, self._limits[1])
            batch: list[bytes] = []
            batched = 0
            chunks = aiter(body)
            while True:
                chunk = await _next_chunk(chunks, clock)
                if chunk is None:
                    exhausted = True
                    break
                batch.append(chunk)
                batched += len(chunk)
                if batched >= self._batch_size:
                    await pending
                    pending = loop.run_in_executor(None, part.write, b"".join(batch))
                    batch, batched = [], 0
                clock.fed()
            await pending
            pending = loop.run_in_executor(None, part.finish_with, b"".join(batch))
            answer: LocalResponse = await pending
        except LocalStorageRefusal as refusal:
            return refused(refusal, body_left=not exhausted)
        except OSError as exc:
            _log.error("LocalStorage could not store a part: %s", os_error_summary(exc))
            return refused(internal_error(), body_left=not exhausted)
        finally:
            await _discard(loop, part, pending)
        return answer


class _PartFile:
    """One part being received: its temporary file in the upload's directory, size and MD5.

    Each step runs in a worker thread, one at a time; :meth:`discard` may come
    from another thread (a request cancelled while a worker still writes),
    so every step holds a lock and nothing happens once the part is discarded.
    """

    def __init__(self, store: PartStore, grant: PartGrant) -> None:
        self._store = store
        self._grant = grant
        self._lock = threading.Lock()
        self._upload: Upload | None = None
        self._path: Path | None = None
        self._file: IO[bytes] | None = None
        self._discarded = False
        self._md5 = hashlib.md5()  # noqa: S324 - a part's ETag is its MD5, as on S3
        self.size = 0

    def open(self) -> None:
        """Create the temporary file in the live upload's directory (never creating that)."""
        with self._lock:
            if self._discarded:
                return
            try:
                self._upload = self._store.get(self._grant.key, self._grant.upload_id)
                path = self._store.temp_path(self._upload)
                self._file = create_exclusive(path)
            except (StorageError, FileNotFoundError, NotADirectoryError):
                raise _no_such_upload() from None
            self._path = path

    def write(self, data: bytes) -> None:
        """Append body bytes; refuse a body longer than the signed size."""
        with self._lock:
            self._write(data)

    def finish_with(self, data: bytes) -> LocalResponse:
        """Write the last bytes, flush the part and place it in its upload; answer its ETag."""
        with self._lock:
            if data:
                self._write(data)
            return self._finish()

    @property
    def holds_file(self) -> bool:
        """Whether a temporary file exists (read it only while no worker holds the part)."""
        return self._file is not None or self._path is not None

    def discard(self) -> None:
        """Close and remove the temporary file unless it was placed; safe to repeat."""
        with self._lock:
            self._discarded = True
            handle, self._file = self._file, None
            path, self._path = self._path, None
            if handle is not None:
                handle.close()
            if path is not None:
                with contextlib.suppress(OSError):  # gone with an upload completed or aborted
                    path.unlink()

    def _write(self, data: bytes) -> None:
        handle = self._file
        if handle is None:
            msg = "the part is not open"
            raise RuntimeError(msg)
        if self.size + len(data) > self._grant.size:
            raise LocalStorageRefusal(
                400,
                "IncompleteBody",
                "The body is longer than the Content-Length the part URL was signed for.",
            )
        self._md5.update(data)
        write_all(handle, data)
        self.size += len(data)

    def _finish(self) -> LocalResponse:
        handle, path, upload = self._file, self._path, self._upload
        if handle is None or path is None or upload is None:
            msg = "the part is not open"
            raise RuntimeError(msg)
        if self.size != self._grant.size:
            raise incomplete_body()
        handle.flush()
        if self._store.fsync:
            os.fsync(handle.fileno())
        handle.close()
        self._file = None
        md5 = self._md5.hexdigest()
        try:
            self._store.place(upload, path, self._grant.part_number, md5)
        except (StorageError, FileNotFoundError):
            raise _no_such_upload() from None
        self._path = None
        request_id = secrets.token_hex(8).upper()
        return LocalResponse(
            200, {"ETag": f'"{md5}"', "Content-Length": "0", "x-amz-request-id": request_id}
        )


async def _discard(
    loop: asyncio.AbstractEventLoop, part: _PartFile, pending: asyncio.Future[Any] | None
) -> None:
    """Discard the part in a worker thread, once no other worker can still be writing it.

    Closing and unlinking a large, partly written file blocks, so it never
    happens in the event loop. A step cancelled with the request may still
    be running in its worker: the part's lock orders the discard after it.
    The answer waits for the discard, but a request cancelled meanwhile does
    not cancel it.
    """
    if pending is not None:
        pending.add_done_callback(_observe)
    settled = pending is None or (pending.done() and not pending.cancelled())
    if settled and not part.holds_file:
        return
    discarding = loop.run_in_executor(None, part.discard)
    discarding.add_done_callback(_observe)
    await asyncio.shield(discarding)


def _observe(future: asyncio.Future[Any]) -> None:
    """Retrieve a finished future's outcome, so asyncio does not log it as unobserved."""
    if not future.cancelled():
        with contextlib.suppress(BaseException):
            future.result()


async def _next_chunk(chunks: AsyncIterator[bytes], clock: ReceiveClock) -> bytes | None:
    """Return the next chunk, or None at the end; refuse a late or broken body."""
    limit = clock.wait_limit(file_started=True)
    if limit is not None and limit <= 0:
        raise request_timeout()
    try:
        async with asyncio.timeout(limit):
            return bytes(await anext(chunks))
    except StopAsyncIteration:
        return None
    except TimeoutError:
        raise request_timeout() from None
    except Exception as exc:
        raise incomplete_body() from exc


def _no_such_upload() -> LocalStorageRefusal:
    return LocalStorageRefusal(
        404,
        "NoSuchUpload",
        "The specified multipart upload does not exist. The upload ID may be invalid, "
        "or the upload may have been aborted or completed.",
    )
