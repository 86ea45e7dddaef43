"""RecordingUploader: one file to one recording, by POST or in parts, resumable."""

from __future__ import annotations

import logging
import os
import uuid
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import attrs
import httpx

from helppet_recordings.client._api import API_PREFIX, RecordingsApi, Session, TokenSource
from helppet_recordings.client._errors import closed_error
from helppet_recordings.client._files import FileIdentity, guess_content_type
from helppet_recordings.client._job import UploadJob
from helppet_recordings.client._multipart import resume_multipart, upload_multipart
from helppet_recordings.client._post import complete_post, upload_post
from helppet_recordings.client._progress import ProgressCallback, ProgressTracker
from helppet_recordings.client._retry import RetryPolicy
from helppet_recordings.client._state import StateKeeper, UploadKind, UploadState, read_state
from helppet_recordings.errors import (
    IdempotencyConflictError,
    InvalidStatusTransitionError,
    RecordingError,
    RecordingNotFoundError,
    UploadKindError,
    UploadTimeoutError,
    ValidationError,
)
from helppet_recordings.multipart import PREFERRED_PART_SIZE
from helppet_recordings.schemas import RecordingResponse
from helppet_recordings.status import RecordingStatus, RecordingType

__all__ = ["DEFAULT_TIMEOUT", "RecordingUploader"]

logger = logging.getLogger("helppet_recordings.client")

DEFAULT_TIMEOUT = httpx.Timeout(30.0, write=120.0)
"""Per-request timeouts: 30 s to connect or read an answer, 120 s to write a chunk."""

_STALE_RECORDING = (
    RecordingNotFoundError,
    UploadTimeoutError,
    UploadKindError,
    IdempotencyConflictError,  # the recording the key named was deleted or purged since
)
"""Answers to a resumed upload that say its recording cannot be carried on: start afresh."""


def _is_stale(exc: RecordingError) -> bool:
    """Whether a resumed upload's answer says to start anew (its recording is gone or failed)."""
    if isinstance(exc, _STALE_RECORDING):
        return True
    failed = exc.details.get("current_status") == RecordingStatus.FAILED.value
    return isinstance(exc, InvalidStatusTransitionError) and failed


def _recording_type(value: RecordingType | str) -> RecordingType:
    try:
        return RecordingType(value)
    except ValueError:
        allowed = ", ".join(kind.value for kind in RecordingType)
        raise ValidationError.for_field("recording_type", f"must be one of {allowed}") from None


class RecordingUploader:
    """Uploads audio files to the recordings API (contract sections 3, 5 and 7).

    ``base_url`` is the API's root (``https://api.example.com``; the routes
    are under ``api_prefix``); ``token`` a bearer token, or a callable that
    returns a current one. A file smaller than ``multipart_threshold`` bytes
    goes in one form POST; a larger one in parts, ``parallel`` at a time.
    Every request is retried by ``retry``. ``transport`` replaces httpx's
    (tests pass an ``httpx.MockTransport``).

    Use it as a context manager, or call :meth:`close`.
    """

    def __init__(
        self,
        base_url: str,
        *,
        token: TokenSource,
        parallel: int = 4,
        multipart_threshold: int = PREFERRED_PART_SIZE,
        retry: RetryPolicy | None = None,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
        api_prefix: str = API_PREFIX,
    ) -> None:
        if parallel < 1:
            raise ValidationError.for_field("parallel", "must be at least 1")
        if multipart_threshold < 1:
            raise ValidationError.for_field("multipart_threshold", "must be at least 1")
        self.parallel = parallel
        self.multipart_threshold = multipart_threshold
        limits = httpx.Limits(max_connections=parallel + 2, max_keepalive_connections=parallel + 2)
        self._http = httpx.Client(timeout=timeout, transport=transport, limits=limits)
        self._session = Session(self._http, retry or RetryPolicy())
        self._api = RecordingsApi(self._session, base_url, token, prefix=api_prefix)

    def upload(
        self,
        path: str | os.PathLike[str],
        *,
        content_type: str | None = None,
        appointment_id: uuid.UUID | str | None = None,
        visit_id: uuid.UUID | str | None = None,
        recording_type: RecordingType | str = RecordingType.VISIT_AUDIO,
        duration_seconds: float | None = None,
        metadata: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
        state_file: str | os.PathLike[str] | None = None,
        progress: ProgressCallback | None = None,
    ) -> RecordingResponse:
        """Upload the file at ``path`` and return the completed recording.

        ``content_type`` defaults to the audio type the extension names.
        ``idempotency_key`` (generated when None) makes a repeated initiate
        return the same recording. With ``state_file``, the upload can be
        resumed after the process died: the next call with the same file and
        state file sends only what storage lacks; the state file is removed
        once the upload completed. ``progress(sent_bytes, total_bytes)`` is
        called as bytes go out (bytes storage already holds count at once).

        Raises the package's :class:`~helppet_recordings.errors.RecordingError`
        subclass for what the API refused, ``StorageError`` for what storage
        refused, ``ConnectionFailedError`` when every retry failed to connect,
        ``FileChangedError`` when the file changed before the upload completed.
        """
        if self._session.closed.is_set():
            raise closed_error()
        file = Path(path)
        identity = FileIdentity.of(file)
        kind: UploadKind = "post" if identity.size < self.multipart_threshold else "multipart"
        job = UploadJob(
            path=file,
            identity=identity,
            content_type=content_type or guess_content_type(file),
            filename=file.name,
            recording_type=_recording_type(recording_type),
            appointment_id=_uuid(appointment_id),
            visit_id=_uuid(visit_id),
            duration_seconds=duration_seconds,
            metadata=metadata,
            keeper=StateKeeper(
                None,
                UploadState.start(
                    identity, kind=kind, idempotency_key=idempotency_key or uuid.uuid4().hex
                ),
            ),
            tracker=ProgressTracker(identity.size, progress),
        )
        job.check(multipart=kind == "multipart")  # before anything is sent or saved
        state_path = None if state_file is None else Path(state_file)
        if state_path is not None and state_path.is_dir():
            raise ValidationError.for_field("state_file", "is a directory: name a file in one")
        request = job.request_sha256()
        state = self._resumable(state_path, identity, request, idempotency_key)
        if state is None:
            state = job.keeper.state.model_copy(update={"request_sha256": request})
        job = attrs.evolve(job, keeper=StateKeeper(state_path, state))
        if state.recording_id is None:
            job.tracker.report()  # (0, total); a resumed upload first learns what storage holds
        recording = self._run(job)
        job.keeper.finished()
        return recording

    def _run(self, job: UploadJob) -> RecordingResponse:
        state = job.keeper.state
        if state.recording_id is not None:
            try:
                return self._resume(job, state.recording_id)
            except RecordingError as exc:
                if not _is_stale(exc):
                    raise
                logger.warning("the saved upload cannot be carried on; starting a new one")
                # Nothing of the old recording carries over: its parts are not the new one's.
                job.keeper.update(
                    recording_id=None,
                    idempotency_key=uuid.uuid4().hex,
                    part_size=None,
                    sent_parts=(),
                )
        if job.keeper.state.kind == "post":
            return upload_post(self._api, self._session, job)
        try:
            return upload_multipart(self._api, self._session, job, parallel=self.parallel)
        except ValidationError as refused:
            if "storage" not in refused.details:
                raise
            # The deployment's storage takes no parts: one POST carries the file instead.
            logger.info("the server's storage takes no multipart uploads; sending one POST")
            job.keeper.update(kind="post")
            return upload_post(self._api, self._session, job)

    def _resume(self, job: UploadJob, recording_id: uuid.UUID) -> RecordingResponse:
        kind = job.keeper.state.kind
        try:
            if kind == "multipart":
                return resume_multipart(
                    self._api, self._session, job, recording_id, parallel=self.parallel
                )
            return upload_post(self._api, self._session, job)  # the same key: same recording
        except InvalidStatusTransitionError:
            # Completed before the previous run could remove its state: completion is
            # idempotent, so asking again returns the recording.
            if kind == "multipart":
                return self._api.complete(recording_id, job.completion(content_sha256=None))
            return complete_post(self._api, job, recording_id)

    def _resumable(
        self,
        path: Path | None,
        identity: FileIdentity,
        request_sha256: str,
        idempotency_key: str | None,
    ) -> UploadState | None:
        if path is None:
            return None
        state = read_state(path)
        if state == "missing":
            return None
        if state == "unreadable":
            logger.warning("ignoring an upload state file that cannot be read as one")
            return None
        if not state.matches(identity, request_sha256) or (
            idempotency_key is not None and idempotency_key != state.idempotency_key
        ):
            logger.warning("ignoring an upload state file written for another file or upload")
            return None
        return state

    def close(self) -> None:
        """Close the HTTP connections; an upload running in another thread stops.

        The running upload ends with a ``RecordingError`` whose
        ``details["reason"]`` is ``closed`` (nothing completed; its state
        file is kept), as does any later ``upload()``. A request blocked on
        its socket (connecting, reading, writing) is not interrupted: the
        upload ends once it times out (30 s, 120 s to write, by default).
        """
        self._session.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def _uuid(value: uuid.UUID | str | None) -> uuid.UUID | None:
    if value is None or isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(value)
    except ValueError:
        raise ValidationError.for_field("id", "is not a UUID") from None
