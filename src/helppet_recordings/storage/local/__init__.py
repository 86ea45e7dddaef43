"""LocalStorage: recordings on the local filesystem, reached through S3-like signed tickets.

A ticket looks like an S3 presigned POST: ``upload_url`` plus ``upload_fields``
(``key``, ``Content-Type``, ``policy``, ``signature``), signed with the
storage's secret; download URLs are signed the same way. An HTTP adapter
serves three routes and hands them to this package, whatever the framework:

- ``POST {base_url}/upload``: :class:`LocalUploadReceiver` parses the body as
  it streams in, checks the fields against the signed policy before a byte of
  the file is kept, bounds what a client without a valid ticket can make it
  hold and how long any client may take, and commits the file atomically.
- ``PUT {base_url}/part/{key}?uploadId=...``: :class:`LocalPartReceiver` takes
  one part of a multipart upload (checks the signed URL and the exact
  length before a byte of the body is read, streams it to disk).
- ``GET`` or ``HEAD {base_url}/download/{key}``: :func:`serve_download`.

All return a :class:`LocalResponse`. Everything here needs only the standard
library except :class:`LocalUploadReceiver`, which needs ``python-multipart``
(the ``local`` extra) and is imported on first use.

On disk, under ``root``::

    objects/<key>          the object's bytes, exactly as uploaded
    sidecars/<key>         its sidecar: content type, size, MD5 (the ETag), SHA-256, ...
    meta/<key>.json        a sidecar of the earlier layout (read, never written)
    .incoming/             uploads in progress; each is moved into place atomically
    .multipart/<id>/       an unfinished multipart upload: upload.json and its parts

The modules, one concern each: :mod:`.signing` (policies, download grants),
:mod:`.keys` (safe keys and their paths), :mod:`.objects` (committing, moving
and deleting objects), :mod:`.turns` (the root's commit lock),
:mod:`.sidecars` (what a sidecar holds and when it describes its file),
:mod:`.staging` (uploads in progress, digests), :mod:`.parts` and
:mod:`.multipart` (multipart uploads), :mod:`.storage` (the
:class:`LocalStorage` class), :mod:`.form` and :mod:`.receiver` (the streaming
multipart receiver), :mod:`.part_receiver` (part PUTs), :mod:`.download`
(serving downloads), :mod:`.responses` and :mod:`.refusal` (what the routes
answer).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from helppet_recordings._lazy import lazy_exports
from helppet_recordings.storage.local.arguments import MIN_SECRET_LENGTH
from helppet_recordings.storage.local.download import DOWNLOAD_CHUNK_SIZE, serve_download
from helppet_recordings.storage.local.keys import MAX_KEY_BYTES, MAX_SEGMENT_BYTES, check_key
from helppet_recordings.storage.local.limits import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_BODY_TIMEOUT,
    DEFAULT_FIELDS_TIMEOUT,
    DEFAULT_IDLE_TIMEOUT,
    MAX_PRE_DATA_BYTES,
)
from helppet_recordings.storage.local.part_receiver import LocalPartReceiver
from helppet_recordings.storage.local.refusal import LocalStorageRefusal
from helppet_recordings.storage.local.responses import FileChunks, LocalResponse
from helppet_recordings.storage.local.signing import (
    DownloadGrant,
    PartGrant,
    UploadPolicy,
)
from helppet_recordings.storage.local.staging import (
    PARALLEL_DIGEST_BYTES,
    STALE_STAGING_SECONDS,
    StagedUpload,
)
from helppet_recordings.storage.local.storage import DEFAULT_BASE_URL, LocalStorage

if TYPE_CHECKING:
    from helppet_recordings.storage.local.receiver import LocalUploadReceiver

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_BODY_TIMEOUT",
    "DEFAULT_FIELDS_TIMEOUT",
    "DEFAULT_IDLE_TIMEOUT",
    "DOWNLOAD_CHUNK_SIZE",
    "MAX_KEY_BYTES",
    "MAX_PRE_DATA_BYTES",
    "MAX_SEGMENT_BYTES",
    "MIN_SECRET_LENGTH",
    "PARALLEL_DIGEST_BYTES",
    "STALE_STAGING_SECONDS",
    "DownloadGrant",
    "FileChunks",
    "LocalPartReceiver",
    "LocalResponse",
    "LocalStorage",
    "LocalStorageRefusal",
    "LocalUploadReceiver",
    "PartGrant",
    "StagedUpload",
    "UploadPolicy",
    "check_key",
    "serve_download",
]

_LAZY = {"LocalUploadReceiver": "helppet_recordings.storage.local.receiver"}


__getattr__, __dir__ = lazy_exports(__name__, globals(), _LAZY, __all__)
