"""Is the stored object the one the ticket allowed? The checks completion and the sweeper share."""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from helppet_recordings import policy
from helppet_recordings.errors import (
    FileTooLargeError,
    UploadNotFoundError,
    UploadSizeMismatchError,
    UploadVerificationError,
    ValidationError,
)
from helppet_recordings.models import Recording, StoredObject
from helppet_recordings.sniffing import sniff_audio

__all__ = [
    "REQUIRED_ENCRYPTION",
    "check_audio_signature",
    "checksum_status",
    "one_checksum",
    "unverified_reason",
    "verify_upload",
]

REQUIRED_ENCRYPTION: Final = "AES256"


def unverified_reason(recording: Recording, stored: StoredObject | None) -> str | None:
    """Say why ``stored`` (what storage holds at ``s3_key`` now) is not the verified audio.

    ``object_missing`` when storage holds nothing there, ``object_changed``
    when its size is not the verified size or (when one was recorded) its
    ETag not the verified ETag; None when it is still the verified object.
    """
    if stored is None:
        return "object_missing"
    if stored.size != recording.file_size_bytes:
        return "object_changed"
    if recording.verified_etag is not None and stored.etag != recording.verified_etag:
        return "object_changed"
    return None


def verify_upload(
    recording: Recording,
    stored: StoredObject | None,
    *,
    max_size: int,
    declared_size: int | None,
    encryption_matches: Callable[[StoredObject], bool] | None = None,
) -> StoredObject:
    """Return ``stored`` if it is the object the ticket allowed; raise the contract's error if not.

    The object must exist, be at most ``max_size`` bytes and of the declared
    size (when given), carry the signed content type and, where storage
    reports it, the encryption uploads must have (``encryption_matches``, the
    storage's own check: AES256, or SSE-KMS with the configured key);
    checksums the client declared must match those storage reports.
    """
    where = {"recording_id": str(recording.id), "s3_key": recording.s3_key}
    if stored is None:
        raise UploadNotFoundError(
            "No uploaded file was found; upload it, then complete again", **where
        )
    if stored.size > max_size:
        raise FileTooLargeError(stored_size=stored.size, max_file_size=max_size, **where)
    if declared_size is not None and stored.size != declared_size:
        raise UploadSizeMismatchError(
            f"Storage holds {stored.size} bytes, not the declared {declared_size}",
            declared_size=declared_size,
            stored_size=stored.size,
            **where,
        )
    stored_type = policy.normalize_content_type(stored.content_type or "")
    if stored_type != recording.mime_type:
        raise UploadVerificationError(
            "The stored file's content type is not the one the upload was signed for",
            expected_content_type=recording.mime_type,
            stored_content_type=stored.content_type,
            reason="content_type",
            **where,
        )
    encryption = stored.server_side_encryption
    if encryption is not None and not (
        encryption_matches(stored)
        if encryption_matches is not None
        else encryption == REQUIRED_ENCRYPTION
    ):
        raise UploadVerificationError(
            "The stored file is not encrypted as uploads must be",
            expected_encryption=REQUIRED_ENCRYPTION if encryption_matches is None else None,
            stored_encryption=encryption,
            reason="encryption",
            **where,
        )
    for name, declared, reported in (
        ("content_md5", recording.content_md5, stored.md5),
        ("content_sha256", recording.content_sha256, stored.sha256),
    ):
        if declared is not None and reported is not None and declared != reported:
            raise UploadVerificationError(
                f"The stored file's checksum does not match {name}",
                checksum=name,
                expected_checksum=declared,
                stored_checksum=reported,
                reason="checksum",
                **where,
            )
    return stored


def check_audio_signature(recording: Recording, head: bytes | None) -> None:
    """Refuse content whose first bytes are not the container the upload was signed for."""
    reason = "object_missing" if head is None else sniff_audio(head, recording.mime_type or "")
    if reason is not None:
        raise UploadVerificationError(
            "The stored file is not audio of the type the upload was signed for",
            recording_id=str(recording.id),
            expected_content_type=recording.mime_type,
            reason=reason,
        )


def checksum_status(recording: Recording, stored: StoredObject) -> str | None:
    """Return ``verified`` if storage confirmed every declared checksum, else ``unverified``.

    None when the client declared none. A checksum storage did not report
    (an SSE-KMS or multipart ETag is no MD5; S3 reports a SHA-256 only for
    uploads that carried one) cannot be confirmed.
    """
    declared = [
        (recording.content_md5, stored.md5),
        (recording.content_sha256, stored.sha256),
    ]
    declared = [(value, reported) for value, reported in declared if value is not None]
    if not declared:
        return None
    confirmed = all(reported is not None and reported == value for value, reported in declared)
    return "verified" if confirmed else "unverified"


def one_checksum(field: str, at_initiate: str | None, at_complete: str | None) -> str | None:
    """Return the checksum the client declared, refusing two different declarations."""
    if at_initiate is not None and at_complete is not None and at_initiate != at_complete:
        raise ValidationError.for_field(field, "differs from the checksum given at initiate")
    return at_complete or at_initiate
