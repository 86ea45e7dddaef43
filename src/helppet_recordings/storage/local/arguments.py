"""Checks of the arguments LocalStorage's methods take; each raises ``ValueError``."""

from __future__ import annotations

from typing import Final

from helppet_recordings.storage._checksums import sha256_fields

__all__ = [
    "MIN_SECRET_LENGTH",
    "check_header_text",
    "check_positive",
    "check_secret",
    "check_sha256",
]

MIN_SECRET_LENGTH: Final = 16
"""Shortest accepted signing secret, in characters (str) or bytes (bytes)."""


def check_secret(secret: object) -> bytes:
    """Return the secret as bytes; raise ``ValueError`` unless it is long enough."""
    if isinstance(secret, str):
        value = secret.encode("utf-8")
        long_enough = len(secret) >= MIN_SECRET_LENGTH
    elif isinstance(secret, bytes):
        value = secret
        long_enough = len(secret) >= MIN_SECRET_LENGTH
    else:
        msg = "secret must be a str or bytes of at least 16 characters"
        raise ValueError(msg)
    if not long_enough:
        msg = f"secret must be at least {MIN_SECRET_LENGTH} characters long"
        raise ValueError(msg)
    return value


def check_positive(value: object, name: str) -> None:
    """Raise ``ValueError`` unless ``value`` is an int of at least 1 (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        msg = f"{name} must be a positive integer"
        raise ValueError(msg)


def check_sha256(value: object) -> None:
    """Raise ``ValueError`` unless ``value`` is None or a SHA-256 digest as 64 hex characters."""
    if value is None:
        return
    if not isinstance(value, str):
        msg = "sha256 must be a SHA-256 digest as 64 hex characters"
        raise ValueError(msg)
    sha256_fields(value)  # raises the same ValueError for any other text


def check_header_text(value: object, name: str) -> None:
    """Raise ``ValueError`` unless ``value`` is 1 to 255 printable ASCII characters."""
    if (
        not isinstance(value, str)
        or not value
        or len(value) > 255
        or not all(" " <= ch <= "~" for ch in value)
    ):
        msg = f"{name} must be 1 to 255 printable ASCII characters"
        raise ValueError(msg)
