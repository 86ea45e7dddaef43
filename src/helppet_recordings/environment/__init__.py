"""The deployment's environment, and the backends it describes.

One place reads what a deployment of the package is configured with, so the
example app, the ``helppet-recordings`` command and a host application see the
same thing:

- ``DATABASE_URL``: the SQLAlchemy URL of the recordings database; default
  the SQLite file ``helppet-recordings.db`` in the working directory.
- ``HELPPET_STORAGE``: ``local`` (default) or ``s3``.
- ``HELPPET_LOCAL_STORAGE_DIR``: where LocalStorage keeps files; default
  ``helppet-recordings-data`` in the working directory.
- ``HELPPET_PUBLIC_BASE_URL``: the base of LocalStorage's upload and
  download URLs, as phones reach the server; default ``http://127.0.0.1:8000``.
- ``HELPPET_CORS_ORIGINS``: comma-separated browser origins allowed to call
  the API and upload to the bucket, each ``scheme://host[:port]`` without a
  wildcard, kept lowercased
  (:func:`~helppet_recordings.origins.parse_cors_origins`); default none.
- ``HELPPET_JWT_SECRET``: the example app's token secret, at least 32 bytes.
- ``HELPPET_LOCAL_STORAGE_SECRET``: signs LocalStorage tickets, at least 16
  characters; default derived from ``HELPPET_JWT_SECRET``.
- ``HELPPET_S3_CHECKSUM_TICKETS``: with ``s3``, whether the server verifies a
  POST's ``x-amz-checksum-sha256`` field, so tickets that pin the file's
  SHA-256 may name the final key (``S3Storage(checksum_tickets=...)``);
  ``true`` (default) or ``false`` (also ``1``/``0``, ``yes``/``no``,
  ``on``/``off``). ``helppet-recordings doctor`` checks the server
  (``s3.checksum_tickets``).

plus :class:`~helppet_recordings.RecordingSettings`' own variables
(``S3_BUCKET_NAME``, ``AWS_REGION``, ``HELPPET_MAX_FILE_SIZE``, ...) and,
with ``s3``, the standard boto3 environment (``AWS_ENDPOINT_URL``,
``AWS_ACCESS_KEY_ID``, ...). A variable that is empty or only whitespace
counts as unset, and surrounding whitespace is removed from every value,
secrets included (:func:`~helppet_recordings.settings.environment_values`):
``DeploymentSettings()``, ``DeploymentSettings.from_env`` and
``RecordingSettings()`` read by this one rule.

Typical use::

    environment = DeploymentSettings()            # or DeploymentSettings.from_env(mapping)
    backends = build_backends(environment, create_schema=True)
    backends.service.expire_stale_uploads()
    backends.close()

A configuration that cannot work raises :class:`ConfigurationError` naming
the variable to fix, however the settings are built (``DeploymentSettings()``,
``from_env``, ``from_values``, ``load``); no value of a variable appears in
its message (a secret or a password in a URL could) and secrets never appear
in ``repr``.
"""

from __future__ import annotations

from helppet_recordings.environment.backends import (
    Backends,
    build_backends,
    build_repository,
    build_storage,
)
from helppet_recordings.environment.settings import DeploymentSettings
from helppet_recordings.environment.variables import (
    DEFAULT_DATABASE_FILE,
    DEFAULT_LOCAL_STORAGE_DIR,
    DEFAULT_PUBLIC_BASE_URL,
    LOCAL_STORAGE_PATH,
    MIN_JWT_SECRET_BYTES,
    STORAGE_KINDS,
    ConfigurationError,
)

__all__ = [
    "DEFAULT_DATABASE_FILE",
    "DEFAULT_LOCAL_STORAGE_DIR",
    "DEFAULT_PUBLIC_BASE_URL",
    "LOCAL_STORAGE_PATH",
    "MIN_JWT_SECRET_BYTES",
    "STORAGE_KINDS",
    "Backends",
    "ConfigurationError",
    "DeploymentSettings",
    "build_backends",
    "build_repository",
    "build_storage",
]
