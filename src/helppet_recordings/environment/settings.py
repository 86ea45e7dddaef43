"""The deployment's settings model, :class:`DeploymentSettings`, read from the environment."""

from __future__ import annotations

import hashlib
import hmac
import os
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, Self

import pydantic
from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from helppet_recordings.environment._validation import (
    _configuration_error,
    _from_mapping,
    _problems,
)
from helppet_recordings.environment.variables import (
    _LOCAL_SECRET_CONTEXT,
    _VARIABLES,
    DEFAULT_DATABASE_FILE,
    DEFAULT_LOCAL_STORAGE_DIR,
    DEFAULT_PUBLIC_BASE_URL,
    MIN_JWT_SECRET_BYTES,
    STORAGE_KINDS,
    ConfigurationError,
)
from helppet_recordings.origins import parse_cors_origins
from helppet_recordings.settings import DocumentedVariables, RecordingSettings
from helppet_recordings.storage.local import MIN_SECRET_LENGTH


def _alias(field: str) -> AliasChoices:
    return AliasChoices(_VARIABLES[field])  # keyword arguments name the field (populate_by_name)


def _default_database_url() -> str:
    return f"sqlite:///{Path.cwd() / DEFAULT_DATABASE_FILE}"


def _default_local_storage_dir() -> Path:
    return Path.cwd() / DEFAULT_LOCAL_STORAGE_DIR


class _EnvironmentSource(DocumentedVariables):
    """The environment (default: the process's), the nested ``recording`` settings included.

    Those are read from their own variables (``S3_BUCKET_NAME``, ...) by
    :class:`RecordingSettings`' source, by the same rule, so that every
    problem is reported together; no variable named ``RECORDING`` is consulted.
    """

    def __init__(
        self, settings_cls: type[BaseSettings], environ: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(settings_cls, environ)
        self._environ = environ

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        """Return the field's value from its documented variable, or None."""
        if field_name == "recording":
            return None, field_name, False
        return super().get_field_value(field, field_name)

    def __call__(self) -> dict[str, Any]:
        """Return the variables found, by variable name; ``recording`` as a mapping."""
        values = super().__call__()
        values["recording"] = DocumentedVariables(RecordingSettings, self._environ)()
        return values


def _recording_defaults() -> RecordingSettings:
    return _from_mapping(RecordingSettings, {})  # from_values reads no environment


class DeploymentSettings(BaseSettings):
    """Everything a deployment is configured with, read from the environment.

    Values come from keyword arguments, then the environment (see the module
    documentation for the variables), then the defaults. ``recording`` holds
    the :class:`RecordingSettings` the service runs with.
    """

    model_config = SettingsConfigDict(
        frozen=True,
        extra="forbid",
        populate_by_name=True,
        case_sensitive=False,
    )

    storage: Annotated[Literal["local", "s3"], Field(validation_alias=_alias("storage"))] = "local"
    database_url: Annotated[
        str, Field(min_length=1, validation_alias=_alias("database_url"), repr=False)
    ] = Field(default_factory=_default_database_url)
    local_storage_dir: Annotated[Path, Field(validation_alias=_alias("local_storage_dir"))] = Field(
        default_factory=_default_local_storage_dir
    )
    public_base_url: Annotated[str, Field(validation_alias=_alias("public_base_url"))] = (
        DEFAULT_PUBLIC_BASE_URL
    )
    cors_origins: Annotated[
        tuple[str, ...], NoDecode, Field(validation_alias=_alias("cors_origins"))
    ] = ()
    jwt_secret: Annotated[SecretStr | None, Field(validation_alias=_alias("jwt_secret"))] = None
    local_storage_secret: Annotated[
        SecretStr | None, Field(validation_alias=_alias("local_storage_secret"))
    ] = None
    s3_checksum_tickets: Annotated[bool, Field(validation_alias=_alias("s3_checksum_tickets"))] = (
        True
    )
    recording: RecordingSettings = Field(default_factory=_recording_defaults)

    def __init__(self, **values: Any) -> None:
        """Read ``values`` (by field or variable name), then the environment, then the defaults.

        Raises :class:`ConfigurationError` naming each variable that is wrong,
        never quoting a value.
        """
        try:
            super().__init__(**values)
        except pydantic.ValidationError as exc:
            problems = _problems(exc, type(self))
        else:
            return
        raise _configuration_error(problems)  # outside the except: pydantic's error quotes values

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Read keyword arguments, then the environment (no dotenv or secret files)."""
        return (init_settings, _EnvironmentSource(settings_cls))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, *, cwd: Path | None = None) -> Self:
        """Read the settings from ``environ`` (default: the process environment).

        The variables are read as ``DeploymentSettings()`` reads the process
        environment. Defaults that name files (the SQLite database,
        LocalStorage's directory) are placed in ``cwd`` (default: the working
        directory). Raises :class:`ConfigurationError` naming each variable
        that is wrong.
        """
        values = _EnvironmentSource(cls, os.environ if environ is None else environ)()
        here = Path.cwd() if cwd is None else cwd
        values.setdefault(_VARIABLES["database_url"], f"sqlite:///{here / DEFAULT_DATABASE_FILE}")
        values.setdefault(_VARIABLES["local_storage_dir"], str(here / DEFAULT_LOCAL_STORAGE_DIR))
        problems: list[dict[str, str]] = []
        try:  # on its own: nested, RecordingSettings' __init__ would read os.environ too
            values["recording"] = _from_mapping(RecordingSettings, values["recording"])
        except ConfigurationError as exc:
            problems += exc.details["errors"]
            values["recording"] = _recording_defaults()
        try:
            settings = _from_mapping(cls, values)
        except ConfigurationError as exc:
            problems += exc.details["errors"]
        if problems:
            raise _configuration_error(problems)
        return settings

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> Self:
        """Validate ``values`` (by field or variable name) into these settings, and nothing else.

        No environment variable fills in what ``values`` leave out. Raises
        :class:`ConfigurationError` naming each variable that is wrong.
        """
        return _from_mapping(cls, values)

    @classmethod
    def load(cls) -> Self:
        """Read the process environment; raise :class:`ConfigurationError` if it is wrong."""
        return cls.from_env()

    @field_validator("storage", mode="before")
    @classmethod
    def _storage_kind(cls, value: object) -> object:
        if isinstance(value, str):
            kind = value.strip().lower()
            if kind not in STORAGE_KINDS:
                msg = "must be 'local' or 's3'"  # a value is never echoed: it may be a secret
                raise ValueError(msg)
            return kind
        return value

    @field_validator("public_base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        url = value.strip().rstrip("/")
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            msg = "must be an http:// or https:// URL"
            raise ValueError(msg)
        return url

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _parse_origins(cls, value: object) -> object:
        if isinstance(value, str) or (
            isinstance(value, list | tuple) and all(isinstance(item, str) for item in value)
        ):
            return parse_cors_origins(value)  # the one parser the API and the bucket use too
        return value

    @field_validator("jwt_secret")
    @classmethod
    def _jwt_secret_length(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().encode("utf-8")) < (
            MIN_JWT_SECRET_BYTES
        ):
            msg = (
                f"must be at least {MIN_JWT_SECRET_BYTES} bytes "
                "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
            )
            raise ValueError(msg)
        return value

    @field_validator("local_storage_secret")
    @classmethod
    def _local_secret_length(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < MIN_SECRET_LENGTH:
            msg = f"must be at least {MIN_SECRET_LENGTH} characters"
            raise ValueError(msg)
        return value

    @property
    def local_secret_source(self) -> str | None:
        """The variable LocalStorage's signing secret comes from, or None when there is none."""
        if self.local_storage_secret is not None:
            return _VARIABLES["local_storage_secret"]
        if self.jwt_secret is not None:
            return _VARIABLES["jwt_secret"]
        return None

    def local_secret(self) -> str | None:
        """Return LocalStorage's signing secret: as configured, else derived from the JWT one."""
        if self.local_storage_secret is not None:
            return self.local_storage_secret.get_secret_value()
        if self.jwt_secret is not None:
            return hmac.new(
                self.jwt_secret.get_secret_value().encode("utf-8"),
                _LOCAL_SECRET_CONTEXT,
                hashlib.sha256,
            ).hexdigest()
        return None

    def require_jwt_secret(self) -> str:
        """Return the JWT secret; raise :class:`ConfigurationError` when it is not set."""
        if self.jwt_secret is None:
            msg = (
                f"HELPPET_JWT_SECRET must be set to a secret of at least {MIN_JWT_SECRET_BYTES} "
                "bytes (e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
            )
            raise ConfigurationError(msg, variable="HELPPET_JWT_SECRET")
        return self.jwt_secret.get_secret_value()
