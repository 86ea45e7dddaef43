"""The length limit of every text field of a recording, in one place.

The SQL table sizes its columns from these, and input validation should
check against the same numbers, so a value that passes validation always
fits its column. Lengths are in characters (code points), as SQL
``VARCHAR(n)`` counts them. Pure constants: no I/O, no optional dependency.

A change to a stored column's length also needs a migration; the
migrations under ``helppet_recordings/migrations`` keep the numbers they
were written with, and the schema test fails until they agree.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

__all__ = [
    "FIELD_LENGTHS",
    "MAX_BUCKET_LENGTH",
    "MAX_CONTENT_MD5_LENGTH",
    "MAX_CONTENT_SHA256_LENGTH",
    "MAX_FILENAME_LENGTH",
    "MAX_IDEMPOTENCY_KEY_LENGTH",
    "MAX_METADATA_LENGTH",
    "MAX_MIME_TYPE_LENGTH",
    "MAX_ORIGINAL_FILENAME_LENGTH",
    "MAX_PROCESSING_ERROR_LENGTH",
    "MAX_RECORDING_TYPE_LENGTH",
    "MAX_STATUS_LENGTH",
    "MAX_STORAGE_KEY_LENGTH",
    "MAX_STORAGE_URL_LENGTH",
    "MAX_TRANSCRIPTION_SERVICE_LENGTH",
    "MAX_TRANSCRIPT_LANGUAGE_LENGTH",
    "MAX_UPLOAD_ID_LENGTH",
]

MAX_FILENAME_LENGTH: Final = 255
"""``filename``: the client's filename as accepted (``VARCHAR(255)``)."""

MAX_ORIGINAL_FILENAME_LENGTH: Final = 255
"""``original_filename``: the client's filename as sent (``VARCHAR(255)``)."""

MAX_RECORDING_TYPE_LENGTH: Final = 50
"""``recording_type``: a ``RecordingType`` value (``VARCHAR(50)``)."""

MAX_STATUS_LENGTH: Final = 20
"""``status``: a ``RecordingStatus`` value (``VARCHAR(20)``)."""

MAX_MIME_TYPE_LENGTH: Final = 100
"""``mime_type``: the content type (``VARCHAR(100)``)."""

MAX_BUCKET_LENGTH: Final = 100
"""``s3_bucket`` (``VARCHAR(100)``; S3 itself allows 63)."""

MAX_STORAGE_KEY_LENGTH: Final = 500
"""``s3_key``: where the audio lives in storage (``VARCHAR(500)``)."""

MAX_STORAGE_URL_LENGTH: Final = 1000
"""``s3_url``: the object's stable, unsigned URI (``VARCHAR(1000)``)."""

MAX_TRANSCRIPT_LANGUAGE_LENGTH: Final = 10
"""``transcript_language``: a language tag such as ``en-US`` (``VARCHAR(10)``)."""

MAX_TRANSCRIPTION_SERVICE_LENGTH: Final = 50
"""``transcription_service``: which service transcribed it (``VARCHAR(50)``)."""

MAX_PROCESSING_ERROR_LENGTH: Final = 10_000
"""``processing_error``: why processing failed; longer reasons are cut to fit.

The column is ``TEXT`` (unbounded), so this is the package's cap, not the database's.
"""

MAX_METADATA_LENGTH: Final = 2000
"""``recording_metadata``, as compact JSON (``VARCHAR(2000)``)."""

MAX_IDEMPOTENCY_KEY_LENGTH: Final = 255
"""``idempotency_key``: the client's key for a retried initiate (``VARCHAR(255)``)."""

MAX_CONTENT_MD5_LENGTH: Final = 32
"""``content_md5``: a declared MD5 as lower-case hex (``VARCHAR(32)``)."""

MAX_CONTENT_SHA256_LENGTH: Final = 64
"""``content_sha256``: a declared SHA-256 as lower-case hex (``VARCHAR(64)``)."""

MAX_ETAG_LENGTH: Final = 100
"""``verified_etag``: the ETag storage reported for the verified object (``VARCHAR(100)``)."""

MAX_CHECKSUM_STATUS_LENGTH: Final = 20
"""``checksum_status``: ``verified`` or ``unverified`` (``VARCHAR(20)``)."""

MAX_AUDIO_NAME_LENGTH: Final = 50
"""``audio_format`` / ``audio_codec``: FFmpeg's short names (``VARCHAR(50)``)."""

MAX_UPLOAD_ID_LENGTH: Final = 1024
"""``multipart_upload_id``: storage's id of an unfinished multipart upload (``VARCHAR(1024)``;
S3 documents no limit, and its ids run to a few hundred characters)."""

FIELD_LENGTHS: Final[Mapping[str, int]] = MappingProxyType(
    {
        "multipart_upload_id": MAX_UPLOAD_ID_LENGTH,
        "upload_key": MAX_STORAGE_KEY_LENGTH,
        "verified_etag": MAX_ETAG_LENGTH,
        "checksum_status": MAX_CHECKSUM_STATUS_LENGTH,
        "audio_format": MAX_AUDIO_NAME_LENGTH,
        "audio_codec": MAX_AUDIO_NAME_LENGTH,
        "filename": MAX_FILENAME_LENGTH,
        "original_filename": MAX_ORIGINAL_FILENAME_LENGTH,
        "recording_type": MAX_RECORDING_TYPE_LENGTH,
        "status": MAX_STATUS_LENGTH,
        "mime_type": MAX_MIME_TYPE_LENGTH,
        "s3_bucket": MAX_BUCKET_LENGTH,
        "s3_key": MAX_STORAGE_KEY_LENGTH,
        "s3_url": MAX_STORAGE_URL_LENGTH,
        "transcript_language": MAX_TRANSCRIPT_LANGUAGE_LENGTH,
        "transcription_service": MAX_TRANSCRIPTION_SERVICE_LENGTH,
        "processing_error": MAX_PROCESSING_ERROR_LENGTH,
        "recording_metadata": MAX_METADATA_LENGTH,
        "idempotency_key": MAX_IDEMPOTENCY_KEY_LENGTH,
        "content_md5": MAX_CONTENT_MD5_LENGTH,
        "content_sha256": MAX_CONTENT_SHA256_LENGTH,
    }
)
"""Each limited text field of ``Recording`` and its longest value, by field name."""
