"""LocalUploadReceiver: receives POST uploads for a LocalStorage, from any framework.

Give :meth:`LocalUploadReceiver.receive_async` (ASGI frameworks) or
:meth:`LocalUploadReceiver.receive` (WSGI, threads) the request's
``Content-Type`` header and its body as an iterator of chunks; either returns
the :class:`~helppet_recordings.storage.local.LocalResponse` to send. Needs
``python-multipart`` (the ``local`` extra).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterable, Iterable

from helppet_recordings.storage.local.form import FormUpload
from helppet_recordings.storage.local.limits import DEFAULT_BATCH_SIZE
from helppet_recordings.storage.local.refusal import (
    LocalStorageRefusal,
    incomplete_body,
    internal_error,
)
from helppet_recordings.storage.local.responses import LocalResponse, refused, stored
from helppet_recordings.storage.local.storage import LocalStorage

__all__ = ["LocalUploadReceiver"]

_log = logging.getLogger(__name__)


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
            upload = FormUpload(self._storage, content_type)
        except LocalStorageRefusal as refusal:
            return refused(refusal, body_left=True)
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
                upload.feed(bytes(chunk))
            return stored(upload.stored)
        except LocalStorageRefusal as refusal:
            return refused(refusal, body_left=not exhausted)
        except OSError:
            _log.exception("LocalStorage could not store an upload")
            return refused(internal_error(), body_left=not exhausted)
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
            upload = FormUpload(self._storage, content_type)
        except LocalStorageRefusal as refusal:
            return refused(refusal, body_left=True)
        pump = _AsyncPump(upload, self._batch_size)
        try:
            await pump.run(body)
            return stored(upload.stored)
        except LocalStorageRefusal as refusal:
            return refused(refusal, body_left=not pump.exhausted)
        except OSError:
            _log.exception("LocalStorage could not store an upload")
            return refused(internal_error(), body_left=not pump.exhausted)
        finally:
            pump.close()


class _AsyncPump:
    """Feeds an upload from an async body, one batch in a worker thread at a time."""

    def __init__(self, upload: FormUpload, batch_size: int) -> None:
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
                raise incomplete_body() from exc
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


def _close_after(future: asyncio.Future[None], upload: FormUpload) -> None:
    if not future.cancelled():
        future.exception()  # retrieved, so asyncio does not log it
    upload.close()
