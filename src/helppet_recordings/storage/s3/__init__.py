"""S3Storage: presigned POST uploads, presigned GET downloads and object checks on boto3.

Needs the ``s3`` extra (boto3). The implementation is split by concern:
``_storage`` (the backend), ``_signer`` (POST policies), ``_multipart``
(multipart uploads), ``_client`` (the default boto3 client) and ``_errors``
(botocore errors translated).
"""

from __future__ import annotations

from helppet_recordings.errors import MissingDependencyError

try:
    import boto3  # noqa: F401 - checked here so that a missing extra says what to install
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingDependencyError("boto3", "s3") from exc

from helppet_recordings.storage.s3._storage import SERVER_SIDE_ENCRYPTION, S3Storage

__all__ = ["SERVER_SIDE_ENCRYPTION", "S3Storage"]
