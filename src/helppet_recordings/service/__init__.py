"""The service layer: ``RecordingService`` and the use cases behind it.

- ``facade``: :class:`RecordingService`, the public entry point; it only delegates;
- ``changes``: :class:`ServiceContext` and the one write path (load, transition,
  compare-and-set, publish, audit);
- ``uploads``: initiate, renew, complete, delete;
- ``verification``: what completion and the sweeper check of a stored object;
- ``queries``: list, get, download URLs (reads of personal content are audited);
- ``reports``: the audit trail and statistics (system operations);
- ``processing``: what workers do after an upload;
- ``maintenance``: the sweeper, reconcile, purge;
- ``inputs``: argument and request checking;
- ``asynchronous``: :class:`AsyncRecordingService` for async hosts.
"""

from __future__ import annotations

from helppet_recordings.service.asynchronous import AsyncRecordingService
from helppet_recordings.service.changes import AuthorizeContext, Clock
from helppet_recordings.service.facade import RecordingService
from helppet_recordings.service.inputs import validation_error_from

__all__ = [
    "AsyncRecordingService",
    "AuthorizeContext",
    "Clock",
    "RecordingService",
    "validation_error_from",
]
