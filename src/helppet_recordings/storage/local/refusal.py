"""LocalStorageRefusal: a request LocalStorage refuses, as the S3 error it answers with.

The named refusals below are the ones more than one module raises; each
carries S3's status, code and message for the same situation.
"""

from __future__ import annotations

import json

__all__ = [
    "LocalStorageRefusal",
    "condition_failed",
    "entity_too_large",
    "incomplete_body",
    "internal_error",
    "key_conflict",
    "malformed",
    "signature_mismatch",
]


class LocalStorageRefusal(Exception):  # noqa: N818 - it is an answer, not a failure of ours
    """A request LocalStorage refuses, with the S3 error an HTTP adapter answers with.

    ``status`` is the HTTP status, ``code`` the S3 error code (``AccessDenied``,
    ``SignatureDoesNotMatch``, ``EntityTooLarge``, ...), ``extra`` further
    elements of the S3 error document.
    """

    def __init__(self, status: int, code: str, message: str, **extra: str) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra
        super().__init__(f"{status} {code}: {message}")


def condition_failed(field: str, expected: object) -> LocalStorageRefusal:
    """403 ``AccessDenied``: the upload's ``field`` is not the ``expected`` the policy signed."""
    condition = json.dumps(["eq", f"${field}", expected])
    return LocalStorageRefusal(
        403, "AccessDenied", f"Invalid according to Policy: Policy Condition failed: {condition}"
    )


def entity_too_large(max_size: int) -> LocalStorageRefusal:
    """400 ``EntityTooLarge``: the file passed the policy's ``max_size``."""
    return LocalStorageRefusal(
        400,
        "EntityTooLarge",
        "Your proposed upload exceeds the maximum allowed size",
        MaxSizeAllowed=str(max_size),
    )


def malformed() -> LocalStorageRefusal:
    """400 ``MalformedPOSTRequest``: the body is not well-formed multipart/form-data."""
    return LocalStorageRefusal(
        400,
        "MalformedPOSTRequest",
        "The body of your POST request is not well-formed multipart/form-data.",
    )


def incomplete_body() -> LocalStorageRefusal:
    """400 ``IncompleteBody``: the body ended (or the client left) inside the file."""
    return LocalStorageRefusal(
        400, "IncompleteBody", "The request body terminated before the file was complete."
    )


def internal_error() -> LocalStorageRefusal:
    """500 ``InternalError``: the disk failed us (full, permissions); nothing was stored."""
    return LocalStorageRefusal(500, "InternalError", "We encountered an internal error.")


def key_conflict(message: str) -> LocalStorageRefusal:
    """409 ``KeyConflict``: the key cannot be a file beside the objects stored; nothing moved."""
    return LocalStorageRefusal(409, "KeyConflict", message)


def signature_mismatch(**extra: str) -> LocalStorageRefusal:
    """403 ``SignatureDoesNotMatch``: something the signature covers was changed."""
    return LocalStorageRefusal(
        403,
        "SignatureDoesNotMatch",
        "The request signature we calculated does not match the signature you provided.",
        **extra,
    )
