"""Upload recordings to the HTTP API from Python (the ``client`` extra).

:class:`RecordingUploader` talks to the API of contract section 5 (the
example app's routes under ``/api/v1/recordings``): it picks a form POST or a
multipart upload by size, sends parts in parallel, retries with exponential
backoff and jitter (honouring ``Retry-After``), renews expired tickets and
part URLs, resumes after the process died (from a small state file),
completes, reports progress, and raises the package's errors::

    from helppet_recordings.client import RecordingUploader

    with RecordingUploader("https://api.example.com", token=token) as uploader:
        recording = uploader.upload("visit.m4a", state_file="visit.m4a.upload-state.json")

See ``docs/client.md``; ``helppet-recordings upload FILE`` is its command line.
"""

from __future__ import annotations

from helppet_recordings.errors import MissingDependencyError

try:
    import httpx  # noqa: F401 - checked here, used by the modules below
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingDependencyError("httpx", "client") from exc
try:
    import stamina  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingDependencyError("stamina", "client") from exc

from helppet_recordings.client._api import API_PREFIX, TokenSource
from helppet_recordings.client._errors import ConnectionFailedError, FileChangedError
from helppet_recordings.client._progress import ProgressCallback
from helppet_recordings.client._retry import RetryPolicy, retry_after
from helppet_recordings.client._state import UploadState, load_state
from helppet_recordings.client._uploader import DEFAULT_TIMEOUT, RecordingUploader

__all__ = [
    "API_PREFIX",
    "DEFAULT_TIMEOUT",
    "ConnectionFailedError",
    "FileChangedError",
    "ProgressCallback",
    "RecordingUploader",
    "RetryPolicy",
    "TokenSource",
    "UploadState",
    "load_state",
    "retry_after",
]
