"""The resumable upload: parts sent in parallel, each retried and re-signed when it expires.

Part ``n`` is the ``size`` bytes of the file from ``(n - 1) * part_size``,
read from disk as it is sent. The server's answers say which parts storage
already holds; only the others are sent. Completion assembles what storage
holds; if it reports parts missing (``UPLOAD_INCOMPLETE``), they are sent
and completion asked again. The first part that fails for good abandons the
others at once (a shared abort signal ends their waits, attempts, renewals
and bodies) and its error is raised.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
import uuid
from typing import Final

import httpx

from helppet_recordings.client._api import RecordingsApi, Session
from helppet_recordings.client._errors import is_expired_url, storage_error
from helppet_recordings.client._files import read_range
from helppet_recordings.client._job import MAX_RENEWALS, UploadJob
from helppet_recordings.client._retry import Aborted, check_abort
from helppet_recordings.errors import RecordingError, UploadIncompleteError
from helppet_recordings.schemas import (
    InitiateMultipartUploadRequest,
    MultipartUploadResponse,
    PartUploadUrl,
    RecordingResponse,
)

__all__ = ["MultipartSender", "upload_multipart"]

logger = logging.getLogger("helppet_recordings.client")

MAX_COMPLETION_ROUNDS: Final = 3
"""How often completion may report parts missing before the upload gives up."""

EXPIRY_MARGIN_SECONDS: Final = 30.0
"""A part URL this close to its expiry (or a quarter of its life) is signed afresh first."""


def _expiring(signed_at: float, expires_in: int) -> bool:
    margin = min(EXPIRY_MARGIN_SECONDS, expires_in / 4)
    return time.monotonic() > signed_at + expires_in - margin


def upload_multipart(
    api: RecordingsApi, session: Session, job: UploadJob, *, parallel: int
) -> RecordingResponse:
    """Initiate a multipart upload of ``job``'s file, send every part, complete."""
    request = InitiateMultipartUploadRequest.model_validate(
        {**job.initiate_fields(), "file_size_bytes": job.identity.size}
    )
    plan = api.initiate_multipart(request)
    job.keeper.update(recording_id=plan.recording_id, part_size=plan.part_size)
    return MultipartSender(api, session, job, parallel=parallel).finish(plan)


def resume_multipart(
    api: RecordingsApi, session: Session, job: UploadJob, recording_id: uuid.UUID, *, parallel: int
) -> RecordingResponse:
    """Carry on an upload a previous run started: send only what storage lacks, complete."""
    plan = api.sign_parts(recording_id)
    held = sum(part.size for part in plan.uploaded_parts)
    logger.info(
        "resuming upload %s: storage holds %d of %d parts (%d bytes)",
        recording_id,
        len(plan.uploaded_parts),
        len(plan.uploaded_parts) + len(plan.parts),
        held,
    )
    return MultipartSender(api, session, job, parallel=parallel).finish(plan)


class MultipartSender:
    """Sends the parts of one multipart upload and completes it."""

    def __init__(
        self, api: RecordingsApi, session: Session, job: UploadJob, *, parallel: int
    ) -> None:
        self._api = api
        self._session = session
        self._job = job
        self._parallel = parallel

    def finish(self, plan: MultipartUploadResponse) -> RecordingResponse:
        """Send what ``plan`` lists as missing, then complete (sending late-found gaps too)."""
        rid = plan.recording_id
        for _ in range(MAX_COMPLETION_ROUNDS):
            self.send(plan)
            try:
                return self._complete(rid)
            except UploadIncompleteError as incomplete:
                missing = [int(n) for n in incomplete.details.get("missing_parts", [])]
                logger.warning("completion found %d part(s) missing; sending them", len(missing))
                plan = self._api.sign_parts(rid, missing or None)
        return self._complete(rid)

    def _complete(self, rid: uuid.UUID) -> RecordingResponse:
        """Complete, unless the file changed since its parts were read (``FILE_CHANGED``)."""
        self._job.check_unchanged()
        return self._api.complete(rid, self._job.completion(content_sha256=None))

    def send(self, plan: MultipartUploadResponse) -> None:
        """Send every part ``plan`` has a URL for, ``parallel`` at a time."""
        tracker = self._job.tracker
        tracker.held({held.part_number: held.size for held in plan.uploaded_parts})
        signed_at = time.monotonic()
        for part in plan.parts:
            self._check_part(plan, part)
        if not plan.parts:
            return
        abort = threading.Event()
        pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=self._parallel, thread_name_prefix="helppet-upload"
        )
        try:
            futures = [
                pool.submit(self._send_part, plan, part, signed_at, abort) for part in plan.parts
            ]
            done, _ = concurrent.futures.wait(
                futures, return_when=concurrent.futures.FIRST_EXCEPTION
            )
        finally:
            # A part failed for good, or the caller was interrupted: the others stop now.
            abort.set()
            pool.shutdown(wait=True, cancel_futures=True)
        failed = next((f for f in done if f.exception() is not None), None)
        if failed is not None:
            failed.result()  # raises the part's error

    def _send_part(
        self,
        plan: MultipartUploadResponse,
        part: PartUploadUrl,
        signed_at: float,
        abort: threading.Event,
    ) -> None:
        """Send one part; a failure sets ``abort`` first, an abort ends it quietly."""
        try:
            self._send_until_stored(plan, part, signed_at, abort)
        except Aborted:
            return
        except BaseException:
            abort.set()
            raise

    def _check_part(self, plan: MultipartUploadResponse, part: PartUploadUrl) -> None:
        offset = (part.part_number - 1) * plan.part_size
        if part.size < 1 or offset + part.size > self._job.identity.size:
            raise RecordingError(
                "The server's part plan does not fit the file",
                part_number=part.part_number,
                part_size=plan.part_size,
            )

    def _send_until_stored(
        self,
        plan: MultipartUploadResponse,
        part: PartUploadUrl,
        signed_at: float,
        abort: threading.Event,
    ) -> None:
        job = self._job
        rid = plan.recording_id
        renewals = 0
        stale = False
        offset = (part.part_number - 1) * plan.part_size
        while True:
            check_abort(abort)
            if stale or _expiring(signed_at, part.expires_in):
                fresh = self._api.sign_parts(rid, [part.part_number])
                if _holds(fresh, part):  # an attempt whose answer was lost had stored it
                    job.tracker.done(part.part_number, part.size)
                    job.keeper.part_sent(part.part_number)
                    return
                renewed = _offered(fresh, part.part_number)
                if renewed is None:
                    return  # not offered again: completion says whether it is missing
                part, signed_at, stale = renewed, time.monotonic(), False

            def build(
                url: str = part.url, size: int = part.size, number: int = part.part_number
            ) -> httpx.Request:
                sent = job.tracker.start_attempt(number)
                body = read_range(
                    job.path, offset, size, identity=job.identity, sent=sent, abort=abort
                )
                return self._session.http.build_request(
                    "PUT", url, content=body, headers={"Content-Length": str(size)}
                )

            response = self._session.send(build, storage=True, abort=abort)
            if response.is_success:
                job.tracker.done(part.part_number, part.size)
                job.keeper.part_sent(part.part_number)
                return
            if is_expired_url(response) and renewals < MAX_RENEWALS:
                renewals += 1
                stale = True
                continue
            raise storage_error(response)


def _holds(answer: MultipartUploadResponse, part: PartUploadUrl) -> bool:
    """Whether the answer lists ``part`` as held by storage, whole (with its planned size).

    The server signs every part asked for; ``uploaded_parts`` says which it holds.
    """
    return any(
        held.part_number == part.part_number and held.size == part.size
        for held in answer.uploaded_parts
    )


def _offered(answer: MultipartUploadResponse, part_number: int) -> PartUploadUrl | None:
    """Return the answer's fresh URL for ``part_number``, if it has one."""
    return next((p for p in answer.parts if p.part_number == part_number), None)
