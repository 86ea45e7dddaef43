"""Translate botocore's errors into the package's (the one translation point for S3)."""

from __future__ import annotations

from typing import Final, NoReturn

import botocore.exceptions

from helppet_recordings.errors import StorageError, StorageUnavailableError

NOT_FOUND_CODES: Final = frozenset({"404", "NoSuchKey", "NotFound"})
RETRYABLE_CODES: Final = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestThrottled",
        "RequestTimeout",
        "ServiceUnavailable",
        "InternalError",
        "503",
        "500",
    }
)
DEFAULT_RETRY_AFTER: Final = 5


def error_code(exc: botocore.exceptions.ClientError) -> str:
    """Return the S3 error code of a client error (``""`` when there is none)."""
    return str(exc.response.get("Error", {}).get("Code", ""))


def raise_translated(exc: Exception) -> NoReturn:
    """Raise the package's error for a botocore error, chained to it."""
    if isinstance(exc, botocore.exceptions.ClientError):
        code = error_code(exc)
        metadata = exc.response.get("ResponseMetadata", {})
        status = int(metadata.get("HTTPStatusCode", 0) or 0)
        if code in RETRYABLE_CODES or status >= 500 or status == 429:
            raise StorageUnavailableError(
                f"S3 is unavailable ({code or status}); retry later",
                retry_after=_retry_after(metadata.get("HTTPHeaders", {})),
                storage_error=code or str(status),
            ) from exc
        raise StorageError(
            f"S3 refused the request ({code or status})", storage_error=code or str(status)
        ) from exc
    if isinstance(exc, botocore.exceptions.ConnectionError | botocore.exceptions.HTTPClientError):
        raise StorageUnavailableError(
            "S3 could not be reached; retry later",
            retry_after=DEFAULT_RETRY_AFTER,
            storage_error=type(exc).__name__,
        ) from exc
    if isinstance(exc, AttributeError):
        # botocore's POST presigner dereferences missing credentials instead of raising
        # NoCredentialsError; nothing else in a presign call raises AttributeError.
        raise StorageError(
            "S3 request could not be signed: NoCredentialsError (no AWS credentials found)",
            storage_error="NoCredentialsError",
        ) from exc
    raise StorageError(
        f"S3 request could not be made: {type(exc).__name__}", storage_error=type(exc).__name__
    ) from exc


def _retry_after(headers: dict[str, str]) -> int:
    value = headers.get("retry-after", "")
    return int(value) if value.isdigit() and 0 < int(value) <= 3600 else DEFAULT_RETRY_AFTER
