"""S3's additional checksums: a declared SHA-256 as upload fields, reported ones as hex.

Shared by the S3 and in-memory backends (pure, no I/O).
"""

from __future__ import annotations

import base64
import binascii
from typing import Final

__all__ = [
    "CHECKSUM_ALGORITHM_FIELD",
    "SHA256_FIELD",
    "from_s3_base64",
    "sha256_fields",
]

CHECKSUM_ALGORITHM_FIELD: Final = "x-amz-checksum-algorithm"
SHA256_FIELD: Final = "x-amz-checksum-sha256"


def sha256_fields(sha256: str) -> dict[str, str]:
    """Return the upload fields that make storage verify the body's SHA-256.

    ``sha256`` is the digest as 64 hex characters (either case); the field
    carries it in base64, as S3 expects. Raises ``ValueError`` otherwise.
    """
    try:
        digest = bytes.fromhex(sha256)
    except ValueError:
        digest = b""
    if len(digest) != 32 or len(sha256) != 64:
        msg = "sha256 must be a SHA-256 digest as 64 hex characters"
        raise ValueError(msg)
    return {
        CHECKSUM_ALGORITHM_FIELD: "SHA256",
        SHA256_FIELD: base64.b64encode(digest).decode("ascii"),
    }


def from_s3_base64(value: str | None, *, size: int) -> str | None:
    """Return a full-object checksum S3 reported (base64) as lower-case hex, or None.

    None when there is none, when it is a composite checksum of a multipart
    upload (``...-N``: a checksum of part checksums, not of the body) or when
    it is not ``size`` bytes of base64.
    """
    if not value or "-" in value:
        return None
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw.hex() if len(raw) == size else None
