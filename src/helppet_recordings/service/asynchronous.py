"""AsyncRecordingService: the same operations as ``async def``, for asyncio hosts.

Backends (boto3, SQLAlchemy's sync engines, the filesystem) block, so each
call runs the synchronous operation in a worker thread and the event loop
stays free. Threads come from the loop's default executor unless an executor
is given; size it (or the default one) for the concurrency the host expects.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from typing import Concatenate, ParamSpec, TypeVar

from helppet_recordings.metrics import RecordingMetrics
from helppet_recordings.ports import RecordingRepository, RecordingStorage
from helppet_recordings.service.facade import RecordingService
from helppet_recordings.settings import RecordingSettings

__all__ = ["AsyncRecordingService"]

_P = ParamSpec("_P")
_T = TypeVar("_T")


def _awaitable(
    method: Callable[Concatenate[RecordingService, _P], _T],
) -> Callable[Concatenate[AsyncRecordingService, _P], Awaitable[_T]]:
    """Turn a ``RecordingService`` method into an ``async def`` run in a worker thread."""

    async def call(self: AsyncRecordingService, /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
        bound = functools.partial(method, self.sync, *args, **kwargs)
        context = contextvars.copy_context()
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, context.run, bound)

    name = method.__name__
    functools.update_wrapper(call, method)  # name, module, __wrapped__: help() shows its arguments
    call.__qualname__ = f"AsyncRecordingService.{name}"
    call.__doc__ = (
        f"Await :meth:`RecordingService.{name}` (same arguments, results and errors).\n\n"
        + inspect.cleandoc(method.__doc__ or "")
    )
    return call


class AsyncRecordingService:
    """Awaitable twins of every :class:`RecordingService` operation, for asyncio.

    Wraps a ``RecordingService`` (``AsyncRecordingService(service)``); the
    arguments, results and errors are exactly the synchronous ones, and the
    caller's context variables (tracing) go with each call to its thread.

    Threads: the loop's default executor has ``min(32, os.cpu_count() + 4)``
    of them, so at most that many operations run at once; pass ``executor``
    (a ``ThreadPoolExecutor`` sized like the database pool, 40 by default) for
    more. Cancelling an awaiting task does not stop its operation: the thread
    runs it to its end, so a recording never changes halfway, and what it did
    is stored and published; the cancelled task only never sees the result.
    The facade runs on asyncio's loop (under AnyIO's asyncio backend too); on
    Trio, call the synchronous service through ``trio.to_thread.run_sync``.
    """

    def __init__(self, service: RecordingService, *, executor: Executor | None = None) -> None:
        self._service = service
        self._executor = executor

    @property
    def sync(self) -> RecordingService:
        """The synchronous service underneath."""
        return self._service

    @property
    def settings(self) -> RecordingSettings:
        """The settings the service runs with."""
        return self._service.settings

    @property
    def storage(self) -> RecordingStorage:
        """The storage backend the service runs on."""
        return self._service.storage

    @property
    def repository(self) -> RecordingRepository:
        """The repository backend the service runs on."""
        return self._service.repository

    @property
    def metrics(self) -> RecordingMetrics:
        """The metrics the service records."""
        return self._service.metrics

    initiate_upload = _awaitable(RecordingService.initiate_upload)
    renew_upload = _awaitable(RecordingService.renew_upload)
    initiate_multipart_upload = _awaitable(RecordingService.initiate_multipart_upload)
    sign_upload_parts = _awaitable(RecordingService.sign_upload_parts)
    complete_upload = _awaitable(RecordingService.complete_upload)
    list_recordings = _awaitable(RecordingService.list_recordings)
    get_recording = _awaitable(RecordingService.get_recording)
    get_download_url = _awaitable(RecordingService.get_download_url)
    delete_recording = _awaitable(RecordingService.delete_recording)
    start_processing = _awaitable(RecordingService.start_processing)
    record_transcript = _awaitable(RecordingService.record_transcript)
    mark_failed = _awaitable(RecordingService.mark_failed)
    expire_stale_uploads = _awaitable(RecordingService.expire_stale_uploads)
    abort_abandoned_uploads = _awaitable(RecordingService.abort_abandoned_uploads)
    reconcile = _awaitable(RecordingService.reconcile)
    purge_deleted = _awaitable(RecordingService.purge_deleted)
    reprocess = _awaitable(RecordingService.reprocess)
    claim_for_processing = _awaitable(RecordingService.claim_for_processing)
    begin_processing = _awaitable(RecordingService.begin_processing)
    extend_claim = _awaitable(RecordingService.extend_claim)
    record_audio = _awaitable(RecordingService.record_audio)
    defer_processing = _awaitable(RecordingService.defer_processing)
    audit_trail = _awaitable(RecordingService.audit_trail)
    stats = _awaitable(RecordingService.stats)
