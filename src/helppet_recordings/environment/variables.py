"""The variables a deployment reads, their defaults, and :class:`ConfigurationError`."""

from __future__ import annotations

from typing import Final

from helppet_recordings.errors import RecordingError

STORAGE_KINDS: Final = ("local", "s3")
"""The values ``HELPPET_STORAGE`` accepts."""

DEFAULT_DATABASE_FILE: Final = "helppet-recordings.db"
"""The SQLite file used, in the working directory, when ``DATABASE_URL`` is unset."""

DEFAULT_LOCAL_STORAGE_DIR: Final = "helppet-recordings-data"
"""LocalStorage's directory, in the working directory, if ``HELPPET_LOCAL_STORAGE_DIR`` is unset."""

DEFAULT_PUBLIC_BASE_URL: Final = "http://127.0.0.1:8000"
"""The base of LocalStorage URLs when ``HELPPET_PUBLIC_BASE_URL`` is unset."""

LOCAL_STORAGE_PATH: Final = "/local-storage"
"""Where an HTTP adapter routes LocalStorage's upload and download requests."""

MIN_JWT_SECRET_BYTES: Final = 32
"""Shortest accepted ``HELPPET_JWT_SECRET``: HS256 wants a key at least as long as its hash."""

_LOCAL_SECRET_CONTEXT: Final = b"helppet-local-storage"
"""Derives the LocalStorage secret from the JWT secret; the example app uses the same."""

_VARIABLES: Final = {
    "storage": "HELPPET_STORAGE",
    "database_url": "DATABASE_URL",
    "local_storage_dir": "HELPPET_LOCAL_STORAGE_DIR",
    "public_base_url": "HELPPET_PUBLIC_BASE_URL",
    "cors_origins": "HELPPET_CORS_ORIGINS",
    "jwt_secret": "HELPPET_JWT_SECRET",
    "local_storage_secret": "HELPPET_LOCAL_STORAGE_SECRET",
    "s3_checksum_tickets": "HELPPET_S3_CHECKSUM_TICKETS",
}


class ConfigurationError(RecordingError, ValueError):
    """The environment does not describe a working deployment; the message says what to set."""

    error_code = "CONFIGURATION_ERROR"
    http_status = 500
    default_message = "The deployment is not configured correctly"
