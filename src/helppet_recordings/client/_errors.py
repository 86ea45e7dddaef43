"""The package's errors, rebuilt from what the API and storage answered.

The API answers every deliberate failure with an ``ErrorResponse`` body
(``message``, ``error_code``, ``details``); :func:`api_error` raises the
:mod:`helppet_recordings.errors` class with that ``error_code`` (an unknown
code becomes a plain :class:`~helppet_recordings.errors.RecordingError`
carrying the server's code). Storage answers with S3's XML error document;
:func:`storage_error` turns it into a :class:`~helppet_recordings.errors.StorageError`
with the S3 code in ``details["storage_error"]``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Final

import httpx
import pydantic

from helppet_recordings import errors
from helppet_recordings.errors import RecordingError, StorageError, UnavailableError
from helppet_recordings.schemas import ErrorResponse

__all__ = [
    "ConnectionFailedError",
    "FileChangedError",
    "api_error",
    "closed_error",
    "is_expired_url",
    "storage_error",
    "storage_error_code",
]


class ConnectionFailedError(UnavailableError):
    """The API or storage could not be reached (or kept timing out) through every retry."""

    error_code = "CONNECTION_FAILED"
    default_message = "The server could not be reached; try again later"


class FileChangedError(RecordingError):
    """The file changed while it was being uploaded; nothing was completed.

    ``details["reason"]`` says how it showed: ``size`` (shorter or longer
    than when the upload started), ``modified`` (another modification time),
    ``missing`` (removed) or ``unreadable`` (the OS refused to read it;
    ``details["os_error"]`` names its error). Upload it again once nothing
    writes it.
    """

    error_code = "FILE_CHANGED"
    http_status = 409
    default_message = "The file changed during the upload; upload it again once it is complete"


def closed_error() -> RecordingError:
    """Return the error an upload ends with when its uploader was closed (``reason`` ``closed``).

    Nothing was completed; a state file is kept, so the upload can be resumed.
    """
    return RecordingError("The uploader was closed before the upload completed", reason="closed")


def _error_classes(root: type[RecordingError]) -> Iterator[type[RecordingError]]:
    for cls in root.__subclasses__():
        yield cls
        yield from _error_classes(cls)


_BY_CODE: Final[dict[str, type[RecordingError]]] = {
    cls.error_code: cls
    for cls in _error_classes(RecordingError)
    if cls.__module__ == errors.__name__ and "error_code" in vars(cls)
}
"""The package's error classes by ``error_code`` (each code belongs to one class)."""


def api_error(response: httpx.Response) -> RecordingError:
    """Return the package's error for a failed API answer (its ``ErrorResponse`` body)."""
    try:
        body = ErrorResponse.model_validate_json(response.content)
    except pydantic.ValidationError:
        return _unrecognized(response, "The API answered with an error it did not explain")
    cls = _BY_CODE.get(body.error_code, RecordingError)
    # Built without the class's __init__: some take their details as named arguments
    # (MissingDependencyError), and the server's message and details are kept as sent.
    # The details are not passed as keywords: a key may be any string ("message", "self").
    error = cls.__new__(cls)
    RecordingError.__init__(error, body.message)
    error.details = dict(body.details)
    if cls is RecordingError:
        # An unknown code keeps its name and status, so callers can still branch on it.
        vars(error).update(error_code=body.error_code, http_status=response.status_code)
    return error


_XML_CODE: Final = re.compile(r"<Code>([A-Za-z0-9.]{1,64})</Code>")
_XML_MESSAGE: Final = re.compile(r"<Message>([^<]{1,500})</Message>")


def _xml(pattern: re.Pattern[str], response: httpx.Response) -> str | None:
    found = pattern.search(response.text[:8192])
    return None if found is None else found.group(1)


def storage_error_code(response: httpx.Response) -> str | None:
    """Return the S3 error code of storage's XML error document, None when there is none.

    Only a body that is XML counts: a JSON answer quoting ``<Code>`` has no code.
    """
    if not response.content.lstrip().startswith(b"<"):
        return None
    return _xml(_XML_CODE, response)


def storage_error(response: httpx.Response) -> StorageError:
    """Return a ``StorageError`` for a storage refusal (S3's XML error document, if any)."""
    code = _xml(_XML_CODE, response) or f"HTTP{response.status_code}"
    message = _xml(_XML_MESSAGE, response)
    return StorageError(
        "Storage refused the upload" + ("" if message is None else f": {message}"),
        storage_error=code,
        http_status=response.status_code,
    )


def is_expired_url(response: httpx.Response) -> bool:
    """Whether storage refused a signed URL or ticket because it expired (a fresh one helps).

    S3 and LocalStorage answer 403 ``AccessDenied`` ("Request has expired",
    "Policy expired"); any 403 ``AccessDenied`` counts, since a renewal is
    cheap and a second refusal of a fresh URL is raised.
    """
    if response.status_code != 403:
        return False
    code = _xml(_XML_CODE, response)
    message = (_xml(_XML_MESSAGE, response) or "").lower()
    return code == "AccessDenied" or "expired" in message


def _unrecognized(response: httpx.Response, message: str) -> RecordingError:
    error = RecordingError(message, http_status=response.status_code)
    vars(error).update(error_code=f"HTTP_{response.status_code}", http_status=response.status_code)
    return error
