"""Every error the package raises on purpose.

Each error carries a stable ``error_code`` (what clients branch on), the HTTP
status an adapter answers with, a human ``message`` and ``details`` telling the
caller what to fix. ``to_dict()`` gives the wire shape of
:class:`~helppet_recordings.schemas.ErrorResponse`.

The tree::

    RecordingError
    ├── ValidationError                VALIDATION_ERROR            422
    ├── UnsupportedContentTypeError    UNSUPPORTED_CONTENT_TYPE    415
    ├── FileTooLargeError              FILE_TOO_LARGE              413
    ├── RecordingNotFoundError         RECORDING_NOT_FOUND         404
    ├── PermissionDeniedError          PERMISSION_DENIED           403
    ├── InvalidStatusTransitionError   INVALID_STATUS_TRANSITION   409
    ├── UploadNotFoundError            UPLOAD_NOT_FOUND            409
    ├── UploadSizeMismatchError        UPLOAD_SIZE_MISMATCH        409
    ├── UploadVerificationError        UPLOAD_VERIFICATION_FAILED  409
    ├── UploadTimeoutError             UPLOAD_TIMEOUT              410
    ├── IdempotencyConflictError       IDEMPOTENCY_CONFLICT        409
    ├── DuplicateRecordingError        DUPLICATE_RECORDING         409  (also a ValueError)
    ├── StorageError                   STORAGE_ERROR               502
    ├── UnavailableError (retryable; ``details["retry_after"]`` in seconds)
    │   ├── StorageUnavailableError    STORAGE_UNAVAILABLE         503
    │   └── RepositoryUnavailableError DATABASE_UNAVAILABLE        503
    ├── RepositoryError                DATABASE_ERROR              500
    └── MissingDependencyError         MISSING_DEPENDENCY          500

Errors of backends (botocore, SQLAlchemy) are translated at the backend
boundary and chained with ``raise ... from exc``; nothing else leaks.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

__all__ = [
    "DuplicateRecordingError",
    "FileTooLargeError",
    "IdempotencyConflictError",
    "InvalidStatusTransitionError",
    "MissingDependencyError",
    "PermissionDeniedError",
    "RecordingError",
    "RecordingNotFoundError",
    "RepositoryError",
    "RepositoryUnavailableError",
    "StorageError",
    "StorageUnavailableError",
    "UnavailableError",
    "UnsupportedContentTypeError",
    "UploadIncompleteError",
    "UploadKindError",
    "UploadNotFoundError",
    "UploadSizeMismatchError",
    "UploadTimeoutError",
    "UploadVerificationError",
    "ValidationError",
]


class RecordingError(Exception):
    """Base of every error the package raises on purpose."""

    error_code: ClassVar[str] = "RECORDING_ERROR"
    http_status: ClassVar[int] = 400
    default_message: ClassVar[str] = "The recording operation failed"

    def __init__(self, message: str | None = None, **details: Any) -> None:
        self.message = message or self.default_message
        self.details: dict[str, Any] = dict(details)
        super().__init__(self.message)

    def to_dict(self) -> dict[str, Any]:
        """Return the ``ErrorResponse`` wire shape: message, error_code, details."""
        return {"message": self.message, "error_code": self.error_code, "details": self.details}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, details={self.details!r})"


class ValidationError(RecordingError):
    """A request or argument is malformed; ``details["errors"]`` lists each field's problem."""

    error_code = "VALIDATION_ERROR"
    http_status = 422
    default_message = "The request is not valid"

    @classmethod
    def for_field(cls, field: str, problem: str, **details: Any) -> ValidationError:
        """Build the error for one field, in the same shape as a multi-field error."""
        return cls(
            f"Invalid {field}: {problem}",
            errors=[{"field": field, "message": problem}],
            **details,
        )


class UnsupportedContentTypeError(RecordingError):
    """The content type is not an allowed audio type, or disagrees with the filename."""

    error_code = "UNSUPPORTED_CONTENT_TYPE"
    http_status = 415
    default_message = "The content type is not an accepted audio type"


class FileTooLargeError(RecordingError):
    """A declared or stored size is larger than the configured maximum."""

    error_code = "FILE_TOO_LARGE"
    http_status = 413
    default_message = "The file is larger than the maximum allowed size"


class RecordingNotFoundError(RecordingError):
    """No such recording for this caller (also when deleted or owned by someone else)."""

    error_code = "RECORDING_NOT_FOUND"
    http_status = 404
    default_message = "Recording not found"


class PermissionDeniedError(RecordingError):
    """The host application's ``authorize_context`` refused the appointment or visit."""

    error_code = "PERMISSION_DENIED"
    http_status = 403
    default_message = "You do not have access to this appointment or visit"


class InvalidStatusTransitionError(RecordingError):
    """The operation is not allowed from the recording's current status."""

    error_code = "INVALID_STATUS_TRANSITION"
    http_status = 409
    default_message = "The operation is not allowed in the recording's current status"


class UploadNotFoundError(RecordingError):
    """Completion was requested but storage holds no object; the recording stays uploading."""

    error_code = "UPLOAD_NOT_FOUND"
    http_status = 409
    default_message = "The uploaded file was not found in storage"


class UploadSizeMismatchError(RecordingError):
    """The stored object's size differs from the size the client declared."""

    error_code = "UPLOAD_SIZE_MISMATCH"
    http_status = 409
    default_message = "The stored file size does not match the declared size"


class UploadIncompleteError(RecordingError):
    """A multipart upload was completed with parts missing; the recording stays uploading.

    ``details["missing_parts"]`` lists the part numbers storage does not hold.
    """

    error_code = "UPLOAD_INCOMPLETE"
    http_status = 409
    default_message = "Parts of the upload are missing; upload them and complete again"


class UploadKindError(RecordingError):
    """The operation belongs to the other kind of upload (POST ticket or multipart)."""

    error_code = "WRONG_UPLOAD_KIND"
    http_status = 409
    default_message = "The operation does not apply to this recording's kind of upload"


class UploadVerificationError(RecordingError):
    """The stored object is not what was signed for; ``details.reason`` says what differs.

    ``content_type``, ``encryption`` and ``checksum`` for what storage
    reports, a container reason such as ``not_a_wav_container`` for the
    object's first bytes, ``object_missing`` or ``object_changed`` for an
    object that went away or changed (docs/security.md lists them all).
    """

    error_code = "UPLOAD_VERIFICATION_FAILED"
    http_status = 409
    default_message = "The stored file does not match what was expected"


class UploadTimeoutError(RecordingError):
    """The upload deadline passed without a valid object; the recording is now failed."""

    error_code = "UPLOAD_TIMEOUT"
    http_status = 410
    default_message = "The upload deadline has passed"


class IdempotencyConflictError(RecordingError):
    """An idempotency key was reused for a different request."""

    error_code = "IDEMPOTENCY_CONFLICT"
    http_status = 409
    default_message = "This idempotency key was already used for a different recording"


class DuplicateRecordingError(RecordingError, ValueError):
    """A repository already holds a recording with this id, key or idempotency key.

    Repositories raise it from ``add``; the service answers a duplicate
    idempotency key with the recording that won. It stays a ``ValueError`` so
    that code written against earlier releases keeps catching it.
    """

    error_code = "DUPLICATE_RECORDING"
    http_status = 409
    default_message = "A recording with this id, key or idempotency key already exists"


class StorageError(RecordingError):
    """Storage refused the request for a reason retrying will not fix (e.g. access denied)."""

    error_code = "STORAGE_ERROR"
    http_status = 502
    default_message = "The storage backend refused the request"


class RepositoryError(RecordingError):
    """The database failed in a way retrying will not fix."""

    error_code = "DATABASE_ERROR"
    http_status = 500
    default_message = "The recordings database failed"


class UnavailableError(RecordingError):
    """A backend could not be reached; retry after ``details["retry_after"]`` seconds.

    Nothing was changed by the failed call.
    """

    http_status = 503
    default_retry_after: ClassVar[int] = 5

    def __init__(
        self, message: str | None = None, *, retry_after: int | None = None, **details: Any
    ) -> None:
        super().__init__(
            message,
            retry_after=self.default_retry_after if retry_after is None else retry_after,
            **details,
        )

    @property
    def retry_after(self) -> int:
        """Seconds the caller should wait before retrying.

        ``default_retry_after`` when ``details["retry_after"]`` is missing or
        not a number of seconds (an error rebuilt from a server's answer
        carries the details that server sent).
        """
        value = self.details.get("retry_after")
        if isinstance(value, bool) or not isinstance(value, int | float):
            return self.default_retry_after
        if not math.isfinite(value) or value < 0:
            return self.default_retry_after
        return int(value)


class StorageUnavailableError(UnavailableError):
    """Storage is unreachable, throttling or timing out."""

    error_code = "STORAGE_UNAVAILABLE"
    default_message = "Storage is temporarily unavailable"


class RepositoryUnavailableError(UnavailableError):
    """The database cannot be reached right now."""

    error_code = "DATABASE_UNAVAILABLE"
    default_message = "The recordings database is temporarily unavailable"


class MissingDependencyError(RecordingError, ImportError):
    """An optional backend was used without its extra installed."""

    error_code = "MISSING_DEPENDENCY"
    http_status = 500
    default_message = "An optional dependency is missing"

    def __init__(self, package: str, extra: str) -> None:
        super().__init__(
            f"{package} is required for this feature; "
            f"install it with: pip install 'helppet-recordings[{extra}]'",
            package=package,
            extra=extra,
        )
