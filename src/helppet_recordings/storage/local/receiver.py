"""LocalUploadReceiver: receives POST uploads for a LocalStorage, from any framework.

Give :meth:`LocalUploadReceiver.receive_async` (ASGI frameworks) or
:meth:`LocalUploadReceiver.receive` (WSGI, threads) the request's
``Content-Type`` header and its body as an iterator of chunks; either returns
the :class:`~helppet_recordings.storage.local.LocalResponse` to send. Needs
``python-multipart`` (the ``local`` extra).

Until the file part has begun under a verified ticket, every chunk is parsed
as soon as it arrives and nothing is held (see ``MAX_PRE_DATA_BYTES``); only
then are file bytes gathered into batches. Three clocks bound how long a
client may keep a request open: the fields timeout (until the file part
begins), the idle timeout (between two chunks) and the body timeout (the
whole body). Past any of them the upload is refused with S3's
``RequestTimeout`` and its temporary file removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from typing import Final

from helppet_recordings.storage.local.deadlines import ReceiveClock, request_timeout
from helppet_recordings.storage.local.files import os_error_summary
from helppet_recordings.storage.local.form import FormUpload
from helppet_recordings.storage.local.limits import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_BODY_TIMEOUT,
    DEFAULT_FIELDS_TIMEOUT,
    DEFAULT_IDLE_TIMEOUT,
    check_receiver_limits,
)
from helppet_recordings.storage.local.refusal import (
    LocalStorageRefusal,
    incomplete_body,
    internal_error,
)
from helppet_recordings.storage.local.responses import LocalResponse, refused, stored
from helppet_recordings.storage.local.storage import LocalStorage

__all__ = ["LocalUploadReceiver"]

_log = logging.getLogger(__name__)

TRAILING_BYTES: Final = 64 * 1024
"""What a body may hold after the file part (its closing boundary) before it is left unread."""


class LocalUploadReceiver:
    """Receives POST uploads for one :class:`LocalStorage`; safe to share between requests.

    ``fields_timeout`` is how long the body may take until the file part
    begins under a valid ticket, ``idle_timeout`` how long the client may send
    nothing, ``body_timeout`` how long the whole body may take; each is in
    seconds, or None for no limit. ``batch_size`` is how many file bytes the
    async receiver gathers before handing them to a worker thread.
    """

    def __init__(
        self,
        storage: LocalStorage,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT,
        fields_timeout: float | None = DEFAULT_FIELDS_TIMEOUT,
        body_timeout: float | None = DEFAULT_BODY_TIMEOUT,
    ) -> None:
        check_receiver_limits(
            batch_size,
            idle_timeout=idle_timeout,
            fields_timeout=fields_timeout,
            body_timeout=body_timeout,
        )
        self._storage = storage
        self._batch_size = batch_size
        self._limits = (idle_timeout, fields_timeout, body_timeout)

    @property
    def storage(self) -> LocalStorage:
        """The storage uploads land in."""
        return self._storage

    def receive(self, content_type: str | None, body: Iterable[bytes]) -> LocalResponse:
        """Receive one upload from a synchronous body; blocks while it streams in.

        A blocking read cannot be interrupted here: the timeouts are checked
        as each chunk arrives, and a client that sends nothing at all is the
        server's socket timeout to catch.
        """
        try:
            upload = FormUpload(self._storage, content_type)
        except LocalStorageRefusal as refusal:
            return refused(refusal, body_left=True)
        clock = ReceiveClock(*self._limits)
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
                    raise incomplete_body() from exc
                clock.check(file_started=upload.file_started)
                upload.feed(bytes(chunk))
                clock.fed()
            return stored(upload.stored, body_left=not (exhausted or _drained(chunks, clock)))
        except LocalStorageRefusal as refusal:
            return refused(refusal, body_left=not exhausted)
        except OSError as exc:
            _log.error("LocalStorage could not store an upload: %s", os_error_summary(exc))
            return refused(internal_error(), body_left=not exhausted)
        finally:
            upload.close()

    async def receive_async(
        self, content_type: str | None, body: AsyncIterable[bytes]
    ) -> LocalResponse:
        """Receive one upload from an asynchronous body (an ASGI request stream).

        The fields are parsed in the event loop as they arrive (at most the
        pre-data limit, touching no disk). The file is parsed, hashed and
        written in the event loop's default executor, a batch at a time,
        while the next batch streams in; the event loop never blocks on the
        disk.
        """
        try:
            upload = FormUpload(self._storage, content_type)
        except LocalStorageRefusal as refusal:
            return refused(refusal, body_left=True)
        pump = _AsyncPump(upload, self._batch_size, ReceiveClock(*self._limits))
        try:
            await pump.run(body)
            return stored(upload.stored, body_left=not await pump.drained())
        except LocalStorageRefusal as refusal:
            return refused(refusal, body_left=not pump.exhausted)
        except OSError as exc:
            _log.error("LocalStorage could not store an upload: %s", os_error_summary(exc))
            return refused(internal_error(), body_left=not pump.exhausted)
        finally:
            await pump.close()


def _drained(chunks: Iterator[bytes], clock: ReceiveClock) -> bool:
    """After the file was stored: read the rest of a blocking body; whether it ended.

    As :meth:`_AsyncPump.drained`: at most :data:`TRAILING_BYTES`, under the
    receive deadlines (checked as each chunk arrives).
    """
    left = TRAILING_BYTES
    try:
        for chunk in chunks:
            clock.check(file_started=True)
            left -= len(chunk)
            if left < 0:
                return False
            clock.fed()
    except LocalStorageRefusal:
        return False
    except Exception:  # noqa: BLE001 - a broken body after the file: only the connection ends
        return False
    return True


class _AsyncPump:
    """Feeds an upload from an async body in worker threads, under the receive deadlines.

    Before the file part begins every chunk is parsed at once (one at a
    time, nothing held); after it, chunks are gathered into batches and one
    batch is parsed and written while the next streams in. Every batch
    handed to a worker is awaited (or, when the request is cancelled, the
    upload is closed after it), so no failure goes unobserved.
    """

    def __init__(self, upload: FormUpload, batch_size: int, clock: ReceiveClock) -> None:
        self._upload = upload
        self._batch_size = batch_size
        self._clock = clock
        self._pending: asyncio.Future[None] | None = None
        self._chunks: AsyncIterator[bytes] | None = None
        self.exhausted = False

    async def run(self, body: AsyncIterable[bytes]) -> None:
        upload = self._upload
        batch: list[bytes] = []
        batched = 0
        chunks = self._chunks = aiter(body)
        while not upload.complete:
            chunk: bytes | memoryview | None = await self._next(chunks)
            if chunk is None:
                self.exhausted = True
                break
            if not upload.file_started:
                rest = self._before_the_file(memoryview(chunk))
                if rest is None:
                    continue  # still before the file: nothing is held
                self._start(upload.open_file)
                await self._wait()
                if not rest or upload.complete:
                    continue
                chunk = rest
            batch.append(bytes(chunk))
            batched += len(chunk)
            if batched >= self._batch_size:
                await self._wait()
                self._start(upload.feed, b"".join(batch))
                batch.clear()
                batched = 0
        await self._wait()
        if batch and not upload.complete:
            self._start(upload.feed, b"".join(batch))
            await self._wait()
        if not upload.complete:
            upload.end()

    async def drained(self) -> bool:
        """After the file was stored: read what is left of the body; whether it ended.

        A client's closing boundary is all there normally is; anything more
        than :data:`TRAILING_BYTES`, or anything the receive deadlines refuse,
        is left unread (the answer then closes the connection, so that no
        request outlives the deadlines once its file is stored).
        """
        if self.exhausted or self._chunks is None:
            return True
        left = TRAILING_BYTES
        try:
            while (chunk := await self._next(self._chunks)) is not None:
                left -= len(chunk)
                if left < 0:
                    return False
                self._clock.fed()
        except LocalStorageRefusal:
            return False
        self.exhausted = True
        return True

    def _before_the_file(self, view: memoryview) -> memoryview | None:
        """Parse ``view`` up to where the file's content begins, here; return the rest.

        None means the file part has not begun yet.

        This runs in the event loop, at once and touching no disk, so a
        client without a valid ticket is refused as soon as its bytes
        arrive: no more than the pre-data limit is ever parsed or copied,
        and nothing waits in the executor's queue holding its buffers.
        """
        upload = self._upload
        while view and not upload.file_started:
            piece = bytes(view[: max(upload.pre_data_room, 1)])
            view = view[len(piece) :]
            upload.parse_before_file(piece)
        return view if upload.file_started else None

    async def _next(self, chunks: AsyncIterator[bytes]) -> bytes | None:
        """Return the next chunk, or None at the end; refuse a late or broken body.

        A batch still being written is awaited first: its refusal (too large,
        malformed) is the better answer than what stopped the body.
        """
        limit = self._clock.wait_limit(file_started=self._upload.file_started)
        if limit is not None and limit <= 0:
            await self._wait()
            raise request_timeout()
        try:
            async with asyncio.timeout(limit):
                return await anext(chunks)
        except StopAsyncIteration:
            return None
        except TimeoutError:
            await self._wait()
            raise request_timeout() from None
        except Exception as exc:
            await self._wait()
            raise incomplete_body() from exc

    def _start(self, work: Callable[..., None], *args: bytes) -> None:
        """Hand ``work(*args)`` (a batch to feed, the file to open) to a worker thread."""
        self._pending = asyncio.get_running_loop().run_in_executor(None, work, *args)

    async def _wait(self) -> None:
        pending = self._pending
        if pending is None:
            return
        try:
            await pending
        finally:
            # Cancelled with the request, it stays recorded: its worker may still be running.
            if not pending.cancelled():
                self._pending = None

    async def close(self) -> None:
        """Discard an unstored file in a worker thread, after any batch a worker still writes.

        Closing and unlinking a large, partly written file blocks (about 0.1 s
        per GiB on ext4, 0.4 s once it reached the disk; a network filesystem
        flushes on close), so it never happens in the event loop. The answer
        waits for it (nothing is left once the refusal is sent), but a
        request cancelled meanwhile does not cancel it.
        """
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.add_done_callback(_observe)
        # A cancelled batch may still be running in its worker, and a running one may yet
        # open the file: the upload's lock orders the close after it.
        settled = pending is None or (pending.done() and not pending.cancelled())
        if settled and not self._upload.holds_file:
            return
        closing = asyncio.get_running_loop().run_in_executor(None, self._upload.close)
        closing.add_done_callback(_observe)
        await asyncio.shield(closing)


def _observe(future: asyncio.Future[None]) -> None:
    """Retrieve a finished future's outcome, so asyncio does not log it as unobserved."""
    if not future.cancelled():
        with contextlib.suppress(Exception):
            future.result()
