"""The resumable upload: parts sent in parallel, each retried and re-signed when it expires.

Part ``n`` is the ``size`` bytes of the file from ``(n - 1) * part_size``,
read from disk as it is sent. The server's answers say which parts storage
already holds; a held part counts only when its ETag shows it holds this
file's bytes (:mod:`._held`), and the others are sent. Completion assembles
what storage holds; if it reports parts missing (``UPLOAD_INCOMPLETE``), they
are sent and completion asked again. The first part that fails for good abandons the
others at once (a shared abort signal ends their waits, attempts, renewals
and bodies) and its error is raised.
"""

from __future__ import annotations

import concurrent.futures
import functools
import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Final, TypeVar

import httpx

from helppet_recordings.client._api import RecordingsApi, Session
from helppet_recordings.client._errors import closed_error, is_expired_url, storage_error
from helppet_recordings.client._files import read_range
from helppet_recordings.client._held import PartLedger
from helppet_recordings.client._job import MAX_RENEWALS, UploadJob
from helppet_recordings.client._plans import checked_plan, part_count, planned_size
from helppet_recordings.client._retry import Aborted, check_abort
from helppet_recordings.errors import (
    IdempotencyConflictError,
    RecordingError,
    UploadIncompleteError,
)
from helppet_recordings.schemas import (
    InitiateMultipartUploadRequest,
    MultipartUploadResponse,
    PartUploadUrl,
    RecordingResponse,
    UploadedPart,
)

__all__ = ["MultipartSender", "upload_multipart"]

logger = logging.getLogger("helppet_recordings.client")

T = TypeVar("T")

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
    plan = checked_plan(api.initiate_multipart(request), job.identity.size)
    job.keeper.update(recording_id=plan.recording_id, part_size=plan.part_size)
    return MultipartSender(api, session, job, parallel=parallel).finish(plan)


def resume_multipart(
    api: RecordingsApi, session: Session, job: UploadJob, recording_id: uuid.UUID, *, parallel: int
) -> RecordingResponse:
    """Carry on an upload a previous run started: send only what storage lacks, complete."""
    plan = checked_plan(api.sign_parts(recording_id), job.identity.size, recording_id=recording_id)
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
        self._ledger = PartLedger(job)

    def finish(self, plan: MultipartUploadResponse) -> RecordingResponse:
        """Send what ``plan`` lists as missing, then complete (sending late-found gaps too)."""
        rid = plan.recording_id
        for _ in range(MAX_COMPLETION_ROUNDS):
            self.send(plan)
            try:
                return self._complete(rid)
            except UploadIncompleteError as incomplete:
                count = part_count(self._job.identity.size, plan.part_size)
                missing = _missing_parts(incomplete, rid, count)
                logger.warning("completion found %d part(s) missing; sending them", len(missing))
                plan = self._sign(plan, missing or None)
        return self._complete(rid)

    def _complete(self, rid: uuid.UUID) -> RecordingResponse:
        """Complete, unless the file changed since its parts were read (``FILE_CHANGED``)."""
        self._job.check_unchanged()
        return self._api.complete(rid, self._job.completion(content_sha256=None))

    def send(self, plan: MultipartUploadResponse) -> None:
        """Send every part ``plan`` has a URL for, and every held part not this file's."""
        checked_plan(plan, self._job.identity.size)
        parts = self._unconfirmed_parts(plan)
        signed_at = time.monotonic()
        self._in_parallel(
            [
                functools.partial(self._send_until_stored, plan, part, signed_at)
                for part in [*plan.parts, *parts]
            ]
        )

    def _unconfirmed_parts(self, plan: MultipartUploadResponse) -> list[PartUploadUrl]:
        """Count the held parts that are this file's; return fresh URLs for the others."""
        offered = {part.part_number for part in plan.parts}
        held = [
            part
            for part in plan.uploaded_parts
            if part.part_number not in offered and self._planned(plan, part)
        ]
        confirmed = self._in_parallel(
            [functools.partial(self._confirms, plan, part) for part in held]
        )
        numbers = [part.part_number for part, ok in zip(held, confirmed, strict=True) if not ok]
        ours = {part.part_number: part.size for part, ok in zip(held, confirmed, strict=True) if ok}
        self._job.tracker.held(ours)
        # Recorded like a part this run sent: once storage assembles them, they are listed
        # without ETags, and only the state file can say they are this file's.
        self._job.keeper.parts_sent(ours)
        if not numbers:
            return []
        logger.warning(
            "storage holds %d part(s) not known to be this file's; sending them again",
            len(numbers),
        )
        fresh = self._sign(plan, numbers)
        renewed = [part for part in fresh.parts if part.part_number in numbers]
        lacking = set(numbers) - {part.part_number for part in renewed}
        if lacking:
            # No URL: the server says storage assembled the parts already (no ETags to compare).
            if not lacking <= set(self._job.keeper.state.sent_parts):
                raise _unconfirmed(plan.recording_id)
            # This client sent them, from this very file (its state says so): they are.
            self._job.tracker.held({n: self._size(plan, n) for n in lacking})
        return renewed

    def _confirms(
        self, plan: MultipartUploadResponse, held: UploadedPart, abort: threading.Event
    ) -> bool:
        offset = (held.part_number - 1) * plan.part_size
        return self._ledger.confirms(
            held.part_number, held.etag, offset=offset, size=held.size, abort=abort
        )

    def _sign(
        self, plan: MultipartUploadResponse, part_numbers: list[int] | None
    ) -> MultipartUploadResponse:
        """Ask for fresh URLs (and what storage holds); the answer must keep to ``plan``."""
        answer = self._api.sign_parts(plan.recording_id, part_numbers)
        return checked_plan(
            answer,
            self._job.identity.size,
            recording_id=plan.recording_id,
            part_size=plan.part_size,
        )

    def _planned(self, plan: MultipartUploadResponse, held: UploadedPart) -> bool:
        """Whether ``held`` is a part of the plan, with its planned size."""
        return held.size >= 1 and held.size == self._size(plan, held.part_number)

    def _size(self, plan: MultipartUploadResponse, part_number: int) -> int:
        """Return the planned size of ``part_number`` (0 for a part the plan does not have)."""
        return planned_size(self._job.identity.size, plan.part_size, part_number)

    def _in_parallel(self, tasks: list[Callable[[threading.Event], T]]) -> list[T | None]:
        """Run ``tasks``, ``parallel`` at a time; the first failure stops the others and is raised.

        Each task gets the shared abort signal; a task ended by it gives None.
        """
        if not tasks:
            return []
        abort = threading.Event()
        pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=self._parallel, thread_name_prefix="helppet-upload"
        )
        try:
            with self._session.watching(abort):  # closing the uploader stops the tasks too
                futures = [pool.submit(_until_aborted, task, abort) for task in tasks]
                done, _ = concurrent.futures.wait(
                    futures, return_when=concurrent.futures.FIRST_EXCEPTION
                )
        finally:
            # A task failed for good, or the caller was interrupted: the others stop now.
            abort.set()
            pool.shutdown(wait=True, cancel_futures=True)
        failed = next((f for f in done if f.exception() is not None), None)
        if failed is not None:
            failed.result()  # raises the task's error
        if self._session.closed.is_set():
            raise closed_error()  # the tasks it stopped ended quietly
        return [future.result() for future in futures]

    def _holds(
        self,
        answer: MultipartUploadResponse,
        part: PartUploadUrl,
        offset: int,
        abort: threading.Event,
    ) -> bool:
        """Whether the answer lists ``part`` as held, whole and with this file's bytes.

        The server signs every part asked for; ``uploaded_parts`` says which it holds.
        """
        return any(
            held.part_number == part.part_number
            and held.size == part.size
            and self._ledger.confirms(
                held.part_number, held.etag, offset=offset, size=held.size, abort=abort
            )
            for held in answer.uploaded_parts
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
                fresh = self._sign(plan, [part.part_number])
                if self._holds(fresh, part, offset, abort):  # an attempt's lost answer stored it
                    job.tracker.done(part.part_number, part.size)
                    job.keeper.part_sent(part.part_number)
                    return
                renewed = _offered(fresh, part.part_number)
                if renewed is None:
                    if any(h.part_number == part.part_number for h in fresh.uploaded_parts):
                        raise _unconfirmed(rid)  # held, not confirmed, and not to be replaced
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
                self._ledger.sent(part.part_number, response.headers.get("ETag"))
                job.tracker.done(part.part_number, part.size)
                job.keeper.part_sent(part.part_number)
                return
            if is_expired_url(response) and renewals < MAX_RENEWALS:
                renewals += 1
                stale = True
                continue
            raise storage_error(response)


def _until_aborted(task: Callable[[threading.Event], T], abort: threading.Event) -> T | None:
    """Run ``task``; a failure sets ``abort`` first, an abort ends it quietly (None)."""
    try:
        return task(abort)
    except Aborted:
        return None
    except BaseException:
        abort.set()
        raise


def _missing_parts(
    incomplete: UploadIncompleteError, recording_id: uuid.UUID, part_count: int
) -> list[int]:
    """Return the part numbers ``UPLOAD_INCOMPLETE`` names (none: every part storage lacks).

    Raises the package's error when they are not a list of this upload's part numbers.
    """
    missing = incomplete.details.get("missing_parts", [])
    if not isinstance(missing, list) or not all(
        type(number) is int and 1 <= number <= part_count for number in missing
    ):
        # The values are not quoted: the answer is not understood, and may be anything.
        raise RecordingError(
            "The API's UPLOAD_INCOMPLETE answer names no parts of this upload",
            recording_id=str(recording_id),
            part_count=part_count,
        ) from incomplete
    return missing


def _unconfirmed(recording_id: uuid.UUID) -> IdempotencyConflictError:
    """Return the error for held parts not known to be this file's that cannot be replaced."""
    return IdempotencyConflictError(
        "The upload holds parts this client cannot confirm as this file's",
        recording_id=str(recording_id),
    )


def _offered(answer: MultipartUploadResponse, part_number: int) -> PartUploadUrl | None:
    """Return the answer's fresh URL for ``part_number``, if it has one."""
    return next((p for p in answer.parts if p.part_number == part_number), None)
