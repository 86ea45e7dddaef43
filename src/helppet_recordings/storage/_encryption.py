"""Server-side encryption as S3 names it: the settings, the upload fields, the check.

Shared by the S3 and in-memory backends (pure, no I/O).
"""

from __future__ import annotations

from typing import Final

from helppet_recordings.models import StoredObject

__all__ = [
    "AES256",
    "AWS_KMS",
    "ENCRYPTION_FIELD",
    "KMS_KEY_FIELD",
    "EncryptionSettings",
    "check_encryption",
    "encryption_fields",
    "encryption_matches",
    "same_kms_key",
]

AES256: Final = "AES256"
"""SSE-S3: keys S3 manages."""

AWS_KMS: Final = "aws:kms"
"""SSE-KMS: a key in AWS KMS (``kms_key_id``, or the account's ``aws/s3`` key)."""

ENCRYPTION_FIELD: Final = "x-amz-server-side-encryption"
KMS_KEY_FIELD: Final = "x-amz-server-side-encryption-aws-kms-key-id"


def check_encryption(sse: str, kms_key_id: str | None) -> None:
    """Raise ``ValueError`` unless ``sse``/``kms_key_id`` is a setting uploads can be held to.

    ``kms_key_id`` goes with ``aws:kms`` only, and must be the key's ARN or
    id: S3 reports the key ARN of a stored object, and an alias cannot be
    checked against it without asking KMS.
    """
    if sse not in {AES256, AWS_KMS}:
        msg = f"sse must be {AES256!r} or {AWS_KMS!r}, not {sse!r}"
        raise ValueError(msg)
    if kms_key_id is None:
        return
    if sse != AWS_KMS:
        msg = "kms_key_id needs sse='aws:kms'"
        raise ValueError(msg)
    if not kms_key_id.strip() or kms_key_id != kms_key_id.strip():
        msg = "kms_key_id must be a key ARN or key id without surrounding spaces"
        raise ValueError(msg)
    if kms_key_id.startswith("alias/") or ":alias/" in kms_key_id:
        msg = (
            "kms_key_id must be the key's ARN or id, not an alias: S3 reports the key ARN "
            "of each object, and completion could not check it against an alias"
        )
        raise ValueError(msg)


def encryption_fields(sse: str, kms_key_id: str | None) -> dict[str, str]:
    """Return the upload fields (and so the exact-match policy conditions) for the setting."""
    fields = {ENCRYPTION_FIELD: sse}
    if sse == AWS_KMS and kms_key_id is not None:
        fields[KMS_KEY_FIELD] = kms_key_id
    return fields


def encryption_matches(stored: StoredObject, *, sse: str, kms_key_id: str | None) -> bool:
    """Whether ``stored`` is encrypted as required: the same SSE and, if one is set, KMS key.

    An object whose encryption storage does not report does not match.
    """
    if stored.server_side_encryption != sse:
        return False
    return sse != AWS_KMS or same_kms_key(kms_key_id, stored.kms_key_id)


def same_kms_key(configured: str | None, reported: str | None) -> bool:
    """Whether the key S3 reported is the configured one (any key when none is configured).

    S3 reports a key ARN (``arn:aws:kms:region:account:key/ID``); a
    configured bare key id matches the ARN that ends in it.
    """
    if configured is None:
        return True
    if reported is None:
        return False
    return configured == reported or _key_id(configured) == _key_id(reported)


def _key_id(key: str) -> str:
    return key.rsplit(":key/", 1)[1] if ":key/" in key else key


class EncryptionSettings:
    """The encryption a storage backend requires of uploads, and the check of a stored object.

    Mixed into the backends that encrypt at rest (S3, memory); they set
    ``_sse`` and ``_kms_key_id`` (checked with :func:`check_encryption`).
    """

    _sse: str
    _kms_key_id: str | None

    @property
    def sse(self) -> str:
        """The server-side encryption uploads must request: ``AES256`` or ``aws:kms``."""
        return self._sse

    @property
    def kms_key_id(self) -> str | None:
        """The KMS key uploads must use with ``aws:kms`` (None: any, the bucket's default)."""
        return self._kms_key_id

    def encryption_matches(self, stored: StoredObject) -> bool:
        """Whether ``stored`` is encrypted as uploads must be (same SSE and, if set, KMS key).

        S3 reports the key as an ARN; a ``kms_key_id`` given as a bare key id
        matches the ARN that ends in it. An object whose encryption is not
        reported does not match.
        """
        return encryption_matches(stored, sse=self._sse, kms_key_id=self._kms_key_id)
