"""Opaque listing cursors: where the next page starts, bound to the listing's filter.

A cursor is the position of the last item of a page (its ``created_at`` and
``id``) plus a fingerprint of the filter it was made for, base64url-encoded.
It grants nothing (every listing is scoped to its caller); a cursor that does
not decode, or was made for another filter, is ``VALIDATION_ERROR``.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
import uuid
from typing import Final

from helppet_recordings.errors import ValidationError
from helppet_recordings.models import Recording, RecordingFilter

__all__ = ["decode_cursor", "encode_cursor"]

_VERSION: Final = 1
_MAX_LENGTH: Final = 512


def encode_cursor(recording_filter: RecordingFilter, last: Recording) -> str:
    """Return the cursor of the page that starts after ``last``."""
    payload = {
        "v": _VERSION,
        "t": last.created_at.astimezone(dt.UTC).isoformat(),
        "i": str(last.id),
        "f": _fingerprint(recording_filter),
    }
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(
    cursor: object, recording_filter: RecordingFilter
) -> tuple[dt.datetime, uuid.UUID]:
    """Return the ``(created_at, id)`` position ``cursor`` names for this filter."""
    try:
        if not isinstance(cursor, str) or not 0 < len(cursor) <= _MAX_LENGTH:
            raise ValueError
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        payload = json.loads(raw)
        if not isinstance(payload, dict) or payload.get("v") != _VERSION:
            raise ValueError
        created_at = dt.datetime.fromisoformat(str(payload["t"]))
        recording_id = uuid.UUID(str(payload["i"]))
        if created_at.tzinfo is None:
            raise ValueError
        # Issued cursors are in UTC; an edited offset may put the time outside datetime's range.
        created_at = created_at.astimezone(dt.UTC)
    except (ValueError, KeyError, TypeError, OverflowError, binascii.Error, UnicodeDecodeError):
        raise ValidationError.for_field("cursor", "is not a cursor this service issued") from None
    if payload.get("f") != _fingerprint(recording_filter):
        raise ValidationError.for_field("cursor", "was issued for a listing with other filters")
    return created_at, recording_id


def _fingerprint(recording_filter: RecordingFilter) -> str:
    parts = (
        recording_filter.user_id,
        recording_filter.appointment_id,
        recording_filter.visit_id,
        recording_filter.status,
    )
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]
