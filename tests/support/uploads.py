"""Where a phone's upload lands: the key its ticket names (a staging key), not ``s3_key``."""

from __future__ import annotations

from helppet_recordings.models import Recording
from helppet_recordings.schemas import InitiateUploadResponse


def upload_key(target: InitiateUploadResponse | Recording) -> str:
    """The key the upload ticket names for this recording."""
    if isinstance(target, InitiateUploadResponse):
        return target.upload_fields["key"]
    return target.upload_key or target.s3_key
