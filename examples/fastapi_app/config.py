"""The example app's configuration (contract section 5) and the backends it builds.

Environment variables:

- ``HELPPET_STORAGE``: ``local`` (default) or ``s3``.
- ``DATABASE_URL``: a SQLAlchemy URL; default a SQLite file
  ``helppet-recordings.db`` in the working directory.
- ``HELPPET_LOCAL_STORAGE_DIR``: where LocalStorage keeps files; default
  ``helppet-recordings-data`` in the working directory.
- ``HELPPET_PUBLIC_BASE_URL``: the base of LocalStorage's upload and download
  URLs, as phones reach this server; default ``http://127.0.0.1:8000``.
- ``HELPPET_JWT_SECRET``: the token secret, at least 32 bytes; required.
- ``HELPPET_JWT_AUDIENCE``, ``HELPPET_JWT_ISSUER``: when set, every token must
  carry this ``aud`` (or a list naming it) and this ``iss``; default unset.
- ``HELPPET_LOCAL_STORAGE_SECRET``: signs LocalStorage tickets; default
  derived from the JWT secret.
- ``HELPPET_CORS_ORIGINS``: comma-separated browser origins allowed to call
  the API and the LocalStorage routes; default none (no CORS headers).

Plus :class:`~helppet_recordings.RecordingSettings`' variables (``S3_BUCKET_NAME``,
``HELPPET_MAX_FILE_SIZE``, ...) and, with ``s3``, the standard boto3
environment (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ...).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Final

import attrs

from helppet_recordings import RecordingService, RecordingSettings
from helppet_recordings.integrations.fastapi import parse_cors_origins
from helppet_recordings.ports import RecordingStorage
from helppet_recordings.storage.local import LocalStorage

from .auth import MIN_SECRET_BYTES, TokenVerifier

__all__ = ["AppConfig", "Backends", "ConfigError", "build_backends"]

STORAGE_KINDS: Final = ("local", "s3")
DEFAULT_DATABASE_FILE: Final = "helppet-recordings.db"
DEFAULT_LOCAL_STORAGE_DIR: Final = "helppet-recordings-data"
DEFAULT_PUBLIC_BASE_URL: Final = "http://127.0.0.1:8000"
LOCAL_STORAGE_PATH: Final = "/local-storage"
"""Where the app routes LocalStorage's upload and download requests."""


class ConfigError(ValueError):
    """The environment does not describe a runnable app; the message says what to set."""


@attrs.frozen(kw_only=True)
class AppConfig:
    """Everything the app needs beyond :class:`RecordingSettings`."""

    storage: str = "local"
    database_url: str
    local_storage_dir: Path
    public_base_url: str = DEFAULT_PUBLIC_BASE_URL
    jwt_secret: str = attrs.field(repr=False)
    local_storage_secret: str | None = attrs.field(default=None, repr=False)
    cors_origins: tuple[str, ...] = ()
    jwt_audience: str | None = None
    jwt_issuer: str | None = None

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, cwd: Path | None = None
    ) -> AppConfig:
        """Read the configuration from ``environ`` (default: the process environment)."""
        env = os.environ if environ is None else environ
        here = Path.cwd() if cwd is None else cwd
        storage = env.get("HELPPET_STORAGE", "local").strip().lower() or "local"
        if storage not in STORAGE_KINDS:
            msg = f"HELPPET_STORAGE must be 'local' or 's3', not {storage!r}"
            raise ConfigError(msg)
        jwt_secret = env.get("HELPPET_JWT_SECRET", "")
        if len(jwt_secret.encode("utf-8")) < MIN_SECRET_BYTES:
            msg = (
                f"HELPPET_JWT_SECRET must be set to a secret of at least {MIN_SECRET_BYTES} "
                "bytes (e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`); "
                "to try the API without one, run the demo: `python -m examples.demo`"
            )
            raise ConfigError(msg)
        base_url = env.get("HELPPET_PUBLIC_BASE_URL", DEFAULT_PUBLIC_BASE_URL).rstrip("/")
        if not base_url.startswith(("http://", "https://")):
            msg = "HELPPET_PUBLIC_BASE_URL must be an http:// or https:// URL"
            raise ConfigError(msg)
        try:
            cors_origins = parse_cors_origins(env.get("HELPPET_CORS_ORIGINS"))
        except ValueError as exc:
            msg = f"HELPPET_CORS_ORIGINS must list origins separated by commas: {exc}"
            raise ConfigError(msg) from None
        return cls(
            storage=storage,
            database_url=env.get("DATABASE_URL") or f"sqlite:///{here / DEFAULT_DATABASE_FILE}",
            local_storage_dir=Path(
                env.get("HELPPET_LOCAL_STORAGE_DIR") or here / DEFAULT_LOCAL_STORAGE_DIR
            ),
            public_base_url=base_url,
            jwt_secret=jwt_secret,
            local_storage_secret=env.get("HELPPET_LOCAL_STORAGE_SECRET") or None,
            cors_origins=cors_origins,
            jwt_audience=env.get("HELPPET_JWT_AUDIENCE", "").strip() or None,
            jwt_issuer=env.get("HELPPET_JWT_ISSUER", "").strip() or None,
        )

    def token_verifier(self) -> TokenVerifier:
        """Return the bearer token checks this configuration asks for."""
        return TokenVerifier(self.jwt_secret, self.jwt_audience, self.jwt_issuer)

    def local_secret(self) -> str:
        """Return the LocalStorage signing secret: as configured, else derived from the JWT one."""
        if self.local_storage_secret:
            return self.local_storage_secret
        return hmac.new(
            self.jwt_secret.encode("utf-8"), b"helppet-local-storage", hashlib.sha256
        ).hexdigest()


@attrs.frozen(kw_only=True)
class Backends:
    """What the app uses: the service, the token checks, LocalStorage (if in use), CORS origins."""

    service: RecordingService
    verifier: TokenVerifier
    local_storage: LocalStorage | None = None
    cors_origins: tuple[str, ...] = ()
    close: Callable[[], None] = lambda: None


def build_backends(config: AppConfig, settings: RecordingSettings | None = None) -> Backends:
    """Build storage, repository (schema brought to head) and service from ``config``."""
    # Imported here: the sql and s3 extras are needed only when these backends are used.
    from helppet_recordings.repositories.sqlalchemy import SqlAlchemyRepository  # noqa: PLC0415

    settings = RecordingSettings() if settings is None else settings
    local: LocalStorage | None = None
    storage: RecordingStorage
    if config.storage == "s3":
        from helppet_recordings.storage.s3 import S3Storage  # noqa: PLC0415

        storage = S3Storage(settings.s3_bucket_name, region_name=settings.aws_region)
    else:
        local = LocalStorage(
            config.local_storage_dir,
            config.public_base_url + LOCAL_STORAGE_PATH,
            config.local_secret(),
        )
        storage = local
    repository = SqlAlchemyRepository.from_url(config.database_url)
    try:
        repository.create_schema()
    except BaseException:
        repository.close()
        raise
    return Backends(
        service=RecordingService(storage=storage, repository=repository, settings=settings),
        verifier=config.token_verifier(),
        local_storage=local,
        cors_origins=config.cors_origins,
        close=repository.close,
    )
