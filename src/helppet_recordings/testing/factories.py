"""Builders of domain objects for tests."""

from __future__ import annotations

import datetime as dt
import secrets
import uuid
from typing import Any

from helppet_recordings.models import Recording
from helppet_recordings.status import RecordingStatus, RecordingType

BASE_TIME = dt.datetime(2026, 11, 24, 9, 30, 15, 123456, tzinfo=dt.UTC)


def make_recording(**overrides: Any) -> Recording:
    """Return a valid uploading recording; ``overrides`` replace any field."""
    recording_id = overrides.pop("id", None) or uuid.uuid4()
    user_id = overrides.pop("recorded_by_user_id", None) or uuid.uuid4()
    created_at = overrides.pop("created_at", BASE_TIME)
    key = overrides.pop(
        "s3_key", f"recordings/{user_id}/unassigned/20261124_093015_{secrets.token_hex(8)}.m4a"
    )
    fields: dict[str, Any] = {
        "id": recording_id,
        "recorded_by_user_id": user_id,
        "recording_type": RecordingType.VISIT_AUDIO,
        "status": RecordingStatus.UPLOADING,
        "filename": key.rsplit("/", 1)[-1],
        "original_filename": "visit.m4a",
        "mime_type": "audio/mp4",
        "s3_bucket": "helppet-audio-recordings",
        "s3_key": key,
        "s3_url": f"s3://helppet-audio-recordings/{key}",
        "upload_expires_at": created_at + dt.timedelta(hours=1, minutes=15),
        "created_at": created_at,
        "updated_at": created_at,
    }
    fields.update(overrides)
    return Recording(**fields)
