"""The reading use cases: list, get, and a signed download URL.

Reads that hand out personal content are audited before they answer:
``get_download_url`` writes ``download_url.issued`` and ``get_recording``
writes ``transcript.read`` (when the recording has a transcript); if the
audit entry cannot be stored, the caller gets the error, never the content.
Listings carry no transcript text (``transcript_text`` is null in every item;
the other transcript fields stay), so a transcript is only ever read through
``get_recording``, one audited read per recording.
"""

from __future__ import annotations

import uuid

from helppet_recordings import audit, events, policy
from helppet_recordings.errors import (
    InvalidStatusTransitionError,
    UploadVerificationError,
    ValidationError,
)
from helppet_recordings.models import Recording, RecordingFilter
from helppet_recordings.schemas import (
    DownloadUrlResponse,
    RecordingListResponse,
    RecordingResponse,
)
from helppet_recordings.service import inputs
from helppet_recordings.service.changes import ServiceContext
from helppet_recordings.service.cursors import decode_cursor, encode_cursor
from helppet_recordings.service.verification import unverified_reason
from helppet_recordings.status import RecordingStatus

__all__ = ["get_download_url", "get_recording", "list_recordings", "without_transcript"]


def list_recordings(
    ctx: ServiceContext,
    user_id: uuid.UUID | str,
    *,
    appointment_id: uuid.UUID | str | None,
    visit_id: uuid.UUID | str | None,
    status: RecordingStatus | str | None,
    limit: int,
    offset: int,
    cursor: str | None = None,
) -> RecordingListResponse:
    """Return the caller's live recordings, newest first, optionally narrowed.

    ``cursor`` (a previous page's ``next_cursor``) continues after that page
    by keyset, at the cost of the first page; it goes with ``offset`` 0.
    """
    recording_filter = RecordingFilter(
        user_id=inputs.user_id(user_id),
        appointment_id=inputs.optional_uuid(appointment_id, "appointment_id"),
        visit_id=inputs.optional_uuid(visit_id, "visit_id"),
        status=inputs.optional_status(status),
    )
    inputs.check_range(limit, "limit", 1, ctx.settings.list_max_limit)
    inputs.check_range(offset, "offset", 0, inputs.MAX_OFFSET)
    # One row more than the page: whether it exists says if there is a next page.
    if cursor is not None:
        if offset:
            raise ValidationError.for_field("offset", "must be 0 when a cursor is given")
        after = decode_cursor(cursor, recording_filter)
        page = ctx.repository.find_page(recording_filter, limit=limit + 1, after=after)
    elif offset:
        page = ctx.repository.find(recording_filter, limit=limit + 1, offset=offset)
    else:
        page = ctx.repository.find_page(recording_filter, limit=limit + 1)
    items = page.items[:limit]
    more = len(page.items) > limit
    return RecordingListResponse(
        items=[without_transcript(r) for r in items],
        total=page.total,
        limit=limit,
        offset=offset,
        next_cursor=encode_cursor(recording_filter, items[-1]) if more else None,
    )


def get_recording(
    ctx: ServiceContext, user_id: uuid.UUID | str, recording_id: uuid.UUID | str
) -> RecordingResponse:
    """One of the caller's recordings; returning its transcript is audited first."""
    owner = inputs.user_id(user_id)
    recording = ctx.owned(owner, inputs.recording_id(recording_id))
    if recording.transcript_text is not None:
        ctx.audit(
            audit.TRANSCRIPT_READ,
            recording,
            owner,
            at=ctx.now(),
            attributes={"characters": len(recording.transcript_text)},
        )
    return RecordingResponse.from_recording(recording)


def without_transcript(recording: Recording) -> RecordingResponse:
    """Return a recording as listings (and repeated completions) show it: no transcript text.

    Transcripts are read one recording at a time (``get_recording``), where
    each read is audited; a page of a listing never carries one. The other
    transcript fields (confidence, language, service) stay.
    """
    return RecordingResponse.from_recording(recording).model_copy(update={"transcript_text": None})


def get_download_url(
    ctx: ServiceContext, user_id: uuid.UUID | str, recording_id: uuid.UUID | str
) -> DownloadUrlResponse:
    """Sign an expiring URL to the recording's verified audio."""
    owner = inputs.user_id(user_id)
    recording = ctx.owned(owner, inputs.recording_id(recording_id))
    if not recording.has_verified_audio:
        raise InvalidStatusTransitionError(
            f"A recording that is {recording.status.value} has no audio to download yet",
            recording_id=str(recording.id),
            current_status=recording.status.value,
        )
    _check_still_verified(ctx, recording)
    expires_in = ctx.settings.s3_presigned_url_expiration
    _, audio = policy.resolve_audio_type(recording.mime_type or "")
    url = ctx.storage.create_download_url(
        key=recording.s3_key,
        expires_in=expires_in,
        content_type=audio.mime_type,
        filename=recording.filename,  # the key's own name: no client text in any URL
    )
    now = ctx.now()
    # No entry, no URL: the audit write comes before the URL leaves the service.
    ctx.audit(
        audit.DOWNLOAD_URL_ISSUED, recording, owner, at=now, attributes={"expires_in": expires_in}
    )
    ctx.emit(
        events.DOWNLOAD_URL_ISSUED,
        recording,
        owner,
        at=now,
        attributes={"expires_in": expires_in},
    )
    return DownloadUrlResponse(download_url=url, expires_in=expires_in)


def _check_still_verified(ctx: ServiceContext, recording: Recording) -> None:
    """Refuse to serve audio storage can no longer confirm is the verified object."""
    reason = unverified_reason(recording, ctx.storage.head(recording.s3_key))
    if reason is not None:
        raise UploadVerificationError(
            "The stored audio is no longer the verified recording; it is not served",
            recording_id=str(recording.id),
            reason=reason,
        )
