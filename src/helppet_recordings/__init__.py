"""helppet_recordings: direct-to-S3 audio uploads with a tracked, verified life cycle.

The public surface is listed in ``__all__``. Backends that need an optional
extra (``S3Storage`` needs ``[s3]``, ``SqlAlchemyRepository`` needs ``[sql]``)
are imported on first use, so importing the package never requires them.
``LocalStorage`` needs only the standard library (its upload receiver needs
``[local]``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from helppet_recordings._lazy import lazy_exports
from helppet_recordings.errors import (
    DuplicateRecordingError,
    FileTooLargeError,
    IdempotencyConflictError,
    InvalidStatusTransitionError,
    MissingDependencyError,
    PermissionDeniedError,
    RecordingError,
    RecordingNotFoundError,
    RepositoryError,
    RepositoryUnavailableError,
    StorageError,
    StorageUnavailableError,
    UnavailableError,
    UnsupportedContentTypeError,
    UploadIncompleteError,
    UploadKindError,
    UploadNotFoundError,
    UploadSizeMismatchError,
    UploadTimeoutError,
    UploadVerificationError,
    ValidationError,
)
from helppet_recordings.events import RecordingEvent
from helppet_recordings.models import ReconcileReport, Recording, StoredObject, UploadTicket
from helppet_recordings.ports import MultipartStorage, RecordingRepository, RecordingStorage
from helppet_recordings.repositories.memory import InMemoryRepository
from helppet_recordings.schemas import (
    CompleteUploadRequest,
    DownloadUrlResponse,
    ErrorResponse,
    InitiateMultipartUploadRequest,
    InitiateUploadRequest,
    InitiateUploadResponse,
    MultipartUploadResponse,
    RecordingListResponse,
    RecordingResponse,
)
from helppet_recordings.service import AsyncRecordingService, RecordingService
from helppet_recordings.settings import RecordingSettings
from helppet_recordings.status import RecordingStatus, RecordingType
from helppet_recordings.storage.local import LocalStorage
from helppet_recordings.storage.memory import InMemoryStorage

if TYPE_CHECKING:
    from helppet_recordings.repositories.sqlalchemy import SqlAlchemyRepository
    from helppet_recordings.storage.s3 import S3Storage

__all__ = [
    "AsyncRecordingService",
    "CompleteUploadRequest",
    "DownloadUrlResponse",
    "DuplicateRecordingError",
    "ErrorResponse",
    "FileTooLargeError",
    "IdempotencyConflictError",
    "InMemoryRepository",
    "InMemoryStorage",
    "InitiateMultipartUploadRequest",
    "InitiateUploadRequest",
    "InitiateUploadResponse",
    "InvalidStatusTransitionError",
    "LocalStorage",
    "MissingDependencyError",
    "MultipartStorage",
    "MultipartUploadResponse",
    "PermissionDeniedError",
    "ReconcileReport",
    "Recording",
    "RecordingError",
    "RecordingEvent",
    "RecordingListResponse",
    "RecordingNotFoundError",
    "RecordingRepository",
    "RecordingResponse",
    "RecordingService",
    "RecordingSettings",
    "RecordingStatus",
    "RecordingStorage",
    "RecordingType",
    "RepositoryError",
    "RepositoryUnavailableError",
    "S3Storage",
    "SqlAlchemyRepository",
    "StorageError",
    "StorageUnavailableError",
    "StoredObject",
    "UnavailableError",
    "UnsupportedContentTypeError",
    "UploadIncompleteError",
    "UploadKindError",
    "UploadNotFoundError",
    "UploadSizeMismatchError",
    "UploadTicket",
    "UploadTimeoutError",
    "UploadVerificationError",
    "ValidationError",
]

_LAZY = {
    "S3Storage": "helppet_recordings.storage.s3",
    "SqlAlchemyRepository": "helppet_recordings.repositories.sqlalchemy",
}


__getattr__, __dir__ = lazy_exports(__name__, globals(), _LAZY, __all__)
