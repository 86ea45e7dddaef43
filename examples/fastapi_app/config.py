"""The example app's configuration: the deployment's environment plus the token and pool options.

:class:`AppConfig` is :class:`~helppet_recordings.environment.DeploymentSettings`
(``DATABASE_URL``, ``HELPPET_STORAGE``, ``HELPPET_LOCAL_STORAGE_DIR``,
``HELPPET_PUBLIC_BASE_URL``, ``HELPPET_CORS_ORIGINS``, ``HELPPET_JWT_SECRET``,
``HELPPET_LOCAL_STORAGE_SECRET``, ``HELPPET_S3_CHECKSUM_TICKETS`` and
:class:`~helppet_recordings.RecordingSettings`' variables, with the same
defaults) with what only this app reads:

- ``HELPPET_JWT_SECRET`` is required (at least 32 bytes);
- ``HELPPET_JWT_AUDIENCE``, ``HELPPET_JWT_ISSUER``: when set, every token must
  carry this ``aud`` (or a list naming it) and this ``iss``; default unset;
- ``HELPPET_DB_POOL_SIZE`` (default 40), ``HELPPET_DB_MAX_OVERFLOW`` (10),
  ``HELPPET_DB_POOL_PRE_PING`` (off) and ``HELPPET_DB_POOL_RECYCLE`` (seconds;
  default 1800 on PostgreSQL): the database connection pool of each server
  process (see ``docs/deployment.md``).

The backends themselves come from :func:`helppet_recordings.environment.build_backends`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Final, Self

from pydantic import AliasChoices, Field, SecretStr, field_validator

from helppet_recordings.environment import (
    MIN_JWT_SECRET_BYTES,
    ConfigurationError,
    DeploymentSettings,
)
from helppet_recordings.repositories.sqlalchemy.engine import (
    DEFAULT_MAX_OVERFLOW,
    DEFAULT_POOL_SIZE,
)

from .auth import TokenVerifier

__all__ = ["AppConfig"]

_APP_VARIABLES: Final = {
    "jwt_audience": "HELPPET_JWT_AUDIENCE",
    "jwt_issuer": "HELPPET_JWT_ISSUER",
    "db_pool_size": "HELPPET_DB_POOL_SIZE",
    "db_max_overflow": "HELPPET_DB_MAX_OVERFLOW",
    "db_pool_pre_ping": "HELPPET_DB_POOL_PRE_PING",
    "db_pool_recycle": "HELPPET_DB_POOL_RECYCLE",
}
_MAX_CONNECTIONS: Final = 10_000
"""More than any PostgreSQL server's ``max_connections`` in practice: a larger pool is a typo."""
_DEMO_HINT: Final = "; to try the API without one, run the demo: `python -m examples.demo`"


def _alias(field: str) -> AliasChoices:
    return AliasChoices(_APP_VARIABLES[field])  # keywords name the field (populate_by_name)


class AppConfig(DeploymentSettings):
    """What the example app runs with: the deployment's settings, token checks and pool size."""

    jwt_audience: Annotated[str | None, Field(validation_alias=_alias("jwt_audience"))] = None
    jwt_issuer: Annotated[str | None, Field(validation_alias=_alias("jwt_issuer"))] = None
    jwt_secret: Annotated[
        SecretStr | None, Field(validation_alias="HELPPET_JWT_SECRET", validate_default=True)
    ] = None
    db_pool_size: Annotated[
        int, Field(ge=1, le=_MAX_CONNECTIONS, validation_alias=_alias("db_pool_size"))
    ] = DEFAULT_POOL_SIZE
    db_max_overflow: Annotated[
        int, Field(ge=0, le=_MAX_CONNECTIONS, validation_alias=_alias("db_max_overflow"))
    ] = DEFAULT_MAX_OVERFLOW
    db_pool_pre_ping: Annotated[bool, Field(validation_alias=_alias("db_pool_pre_ping"))] = False
    db_pool_recycle: Annotated[
        float | None,
        Field(gt=0, allow_inf_nan=False, validation_alias=_alias("db_pool_recycle")),
    ] = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, *, cwd: Path | None = None) -> Self:
        """Read the configuration from ``environ`` (default: the process environment).

        Raises :class:`~helppet_recordings.environment.ConfigurationError`
        naming the variable to fix, ``HELPPET_JWT_SECRET`` when it is missing.
        """
        try:
            return super().from_env(environ, cwd=cwd)
        except ConfigurationError as exc:
            if "HELPPET_JWT_SECRET" not in exc.message:
                raise
            error = ConfigurationError(exc.message + _DEMO_HINT, **exc.details)
        raise error

    @field_validator("jwt_audience", "jwt_issuer")
    @classmethod
    def _blank_is_unset(cls, value: str | None) -> str | None:
        return (value or "").strip() or None

    @field_validator("jwt_secret")
    @classmethod
    def _secret_is_required(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            msg = (
                f"must be set to a secret of at least {MIN_JWT_SECRET_BYTES} bytes "
                "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
            )
            raise ValueError(msg)
        return value

    def token_verifier(self) -> TokenVerifier:
        """Return the bearer token checks this configuration asks for."""
        return TokenVerifier(self.require_jwt_secret(), self.jwt_audience, self.jwt_issuer)

    def engine_options(self) -> dict[str, Any]:
        """Return the connection pool keywords for ``SqlAlchemyRepository.from_url``."""
        options: dict[str, Any] = {
            "pool_size": self.db_pool_size,
            "max_overflow": self.db_max_overflow,
            "pool_pre_ping": self.db_pool_pre_ping,
        }
        if self.db_pool_recycle is not None:
            options["pool_recycle"] = self.db_pool_recycle
        return options
