"""The single-request upload: initiate, POST the form to storage, complete.

The file's SHA-256 is declared at initiate: S3 then signs it into the POST
policy and refuses other bytes, and completion verifies it. An expired
ticket (storage's 403) is renewed and the form sent again.
"""

from __future__ import annotations

import os
import uuid
from typing import IO, cast

import httpx

from helppet_recordings.client._api import RecordingsApi, Session
from helppet_recordings.client._errors import is_expired_url, storage_error
from helppet_recordings.client._files import CountingReader, open_file
from helppet_recordings.client._job import MAX_RENEWALS, UploadJob
from helppet_recordings.schemas import (
    InitiateUploadRequest,
    InitiateUploadResponse,
    RecordingResponse,
)

__all__ = ["upload_post"]


def upload_post(api: RecordingsApi, session: Session, job: UploadJob) -> RecordingResponse:
    """Upload ``job``'s file in one form POST and complete it."""
    request = InitiateUploadRequest.model_validate(
        {**job.initiate_fields(), "content_sha256": job.identity.sha256}
    )
    ticket = api.initiate(request)
    job.keeper.update(recording_id=ticket.recording_id)
    _send_form(api, session, job, ticket)
    return complete_post(api, job, ticket.recording_id)


def complete_post(api: RecordingsApi, job: UploadJob, recording_id: uuid.UUID) -> RecordingResponse:
    """Complete a POST upload, declaring the file's SHA-256 as at initiate."""
    return api.complete(recording_id, job.completion(content_sha256=job.identity.sha256))


def _send_form(
    api: RecordingsApi, session: Session, job: UploadJob, ticket: InitiateUploadResponse
) -> None:
    renewals = 0
    extension = job.path.suffix.lower()
    with open_file(job.path) as handle:
        while True:
            fields = ticket.upload_fields
            url = ticket.upload_url

            def build(fields: dict[str, str] = fields, url: str = url) -> httpx.Request:
                job.identity.check(os.fstat(handle.fileno()))  # FILE_CHANGED: not sent again
                # httpx reads, seeks and measures (fileno) a file; that is all this one does.
                reader = cast("IO[bytes]", CountingReader(handle, job.tracker.start_attempt(1)))
                # A neutral file name: the original never leaves in a form sent to storage.
                upload = ("recording" + extension, reader, fields.get("Content-Type"))
                return session.http.build_request("POST", url, data=fields, files={"file": upload})

            response = session.send(build, storage=True)
            if response.is_success:
                # Written while it was sent: storage holds a mix, which must not be completed.
                job.identity.check(os.fstat(handle.fileno()))
                job.tracker.done(1, job.identity.size)
                return
            if is_expired_url(response) and renewals < MAX_RENEWALS:
                renewals += 1
                ticket = api.renew(ticket.recording_id)
                continue
            raise storage_error(response)
