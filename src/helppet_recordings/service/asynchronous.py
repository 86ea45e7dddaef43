"""AsyncRecordingService: the same operations as ``async def``, for async hosts.

Backends (boto3, SQLAlchemy's sync engines, the filesystem) block, so each
call runs the synchronous operation in a worker thread and the event loop
stays free. Threads come from the loop's default executor unless an executor
is given; size it (or the default one) for the concurrency the host expects.
"""

from __future__ import annotations

import asyncio
import contextvars
import datetime as dt
import functools
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from typing import Any, ParamSpec, TypeVar

from helppet_recordings.models import ReconcileReport
from helppet_recordings.schemas import (
    CompleteUploadRequest,
    DownloadUrlResponse,
    InitiateUploadRequest,
    InitiateUploadResponse,
    RecordingListResponse,
    RecordingResponse,
)
from helppet_recordings.service.facade import RecordingService
from helppet_recordings.settings import RecordingSettings
from helppet_recordings.status import RecordingStatus

__all__ = ["AsyncRecordingService"]

_P = ParamSpec("_P")
_T = TypeVar("_T")


class AsyncRecordingService:
    """Awaitable twins of every :class:`RecordingService` operation.

    Wraps a ``RecordingService`` (``AsyncRecordingService(service)``); the
    arguments, results and errors are exactly the synchronous ones.
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

    async def _run(self, method: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
        loop = asyncio.get_running_loop()
        context = contextvars.copy_context()
        call = functools.partial(context.run, method, *args, **kwargs)
        return await loop.run_in_executor(self._executor, call)

    async def initiate_upload(
        self, user_id: uuid.UUID | str, request: InitiateUploadRequest | Mapping[str, Any]
    ) -> InitiateUploadResponse:
        """See :meth:`RecordingService.initiate_upload`."""
        return await self._run(self._service.initiate_upload, user_id, request)

    async def renew_upload(
        self, user_id: uuid.UUID | str, recording_id: uuid.UUID | str
    ) -> InitiateUploadResponse:
        """See :meth:`RecordingService.renew_upload`."""
        return await self._run(self._service.renew_upload, user_id, recording_id)

    async def complete_upload(
        self,
        user_id: uuid.UUID | str,
        recording_id: uuid.UUID | str,
        request: CompleteUploadRequest | Mapping[str, Any],
    ) -> RecordingResponse:
        """See :meth:`RecordingService.complete_upload`."""
        return await self._run(self._service.complete_upload, user_id, recording_id, request)

    async def list_recordings(
        self,
        user_id: uuid.UUID | str,
        *,
        appointment_id: uuid.UUID | str | None = None,
        visit_id: uuid.UUID | str | None = None,
        status: RecordingStatus | str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> RecordingListResponse:
        """See :meth:`RecordingService.list_recordings`."""
        return await self._run(
            self._service.list_recordings,
            user_id,
            appointment_id=appointment_id,
            visit_id=visit_id,
            status=status,
            limit=limit,
            offset=offset,
        )

    async def get_recording(
        self, user_id: uuid.UUID | str, recording_id: uuid.UUID | str
    ) -> RecordingResponse:
        """See :meth:`RecordingService.get_recording`."""
        return await self._run(self._service.get_recording, user_id, recording_id)

    async def get_download_url(
        self, user_id: uuid.UUID | str, recording_id: uuid.UUID | str
    ) -> DownloadUrlResponse:
        """See :meth:`RecordingService.get_download_url`."""
        return await self._run(self._service.get_download_url, user_id, recording_id)

    async def delete_recording(
        self, user_id: uuid.UUID | str, recording_id: uuid.UUID | str
    ) -> None:
        """See :meth:`RecordingService.delete_recording`."""
        await self._run(self._service.delete_recording, user_id, recording_id)

    async def start_processing(self, recording_id: uuid.UUID | str) -> RecordingResponse:
        """See :meth:`RecordingService.start_processing`."""
        return await self._run(self._service.start_processing, recording_id)

    async def record_transcript(
        self,
        recording_id: uuid.UUID | str,
        *,
        text: str,
        confidence: float | None = None,
        language: str | None = None,
        service: str | None = None,
    ) -> RecordingResponse:
        """See :meth:`RecordingService.record_transcript`."""
        return await self._run(
            self._service.record_transcript,
            recording_id,
            text=text,
            confidence=confidence,
            language=language,
            service=service,
        )

    async def mark_failed(self, recording_id: uuid.UUID | str, *, error: str) -> RecordingResponse:
        """See :meth:`RecordingService.mark_failed`."""
        return await self._run(self._service.mark_failed, recording_id, error=error)

    async def expire_stale_uploads(
        self, *, now: dt.datetime | None = None, batch_size: int = 100, lease_seconds: int = 300
    ) -> int:
        """See :meth:`RecordingService.expire_stale_uploads`."""
        return await self._run(
            self._service.expire_stale_uploads,
            now=now,
            batch_size=batch_size,
            lease_seconds=lease_seconds,
        )

    async def reconcile(
        self,
        *,
        delete_orphans: bool = False,
        orphan_min_age_seconds: int = 3600,
        now: dt.datetime | None = None,
        page_size: int = 1000,
    ) -> ReconcileReport:
        """See :meth:`RecordingService.reconcile`."""
        return await self._run(
            self._service.reconcile,
            delete_orphans=delete_orphans,
            orphan_min_age_seconds=orphan_min_age_seconds,
            now=now,
            page_size=page_size,
        )

    async def purge_deleted(
        self,
        *,
        retention_days: int | None = None,
        now: dt.datetime | None = None,
        batch_size: int = 100,
    ) -> int:
        """See :meth:`RecordingService.purge_deleted`."""
        return await self._run(
            self._service.purge_deleted,
            retention_days=retention_days,
            now=now,
            batch_size=batch_size,
        )
