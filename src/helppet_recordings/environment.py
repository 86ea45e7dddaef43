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
  the API and upload to the bucket; default none.
- ``HELPPET_JWT_SECRET``: the example app's token secret, at least 32 bytes.
- ``HELPPET_LOCAL_STORAGE_SECRET``: signs LocalStorage tickets, at least 16
  characters; default derived from ``HELPPET_JWT_SECRET``.

plus :class:`~helppet_recordings.RecordingSettings`' own variables
(``S3_BUCKET_NAME``, ``AWS_REGION``, ``HELPPET_MAX_FILE_SIZE``, ...) and,
with ``s3``, the standard boto3 environment (``AWS_ENDPOINT_URL``,
``AWS_ACCESS_KEY_ID``, ...). An empty variable counts as unset.

Typical use::

    environment = DeploymentSettings()            # or DeploymentSettings.from_env(mapping)
    backends = build_backends(environment, create_schema=True)
    backends.service.expire_stale_uploads()
    backends.close()

A configuration that cannot work raises :class:`ConfigurationError` naming
the variable to fix; secrets never appear in messages or ``repr``.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
import urllib.parse
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Final, Literal, TypeVar

import attrs
import pydantic
from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from helppet_recordings.errors import RecordingError
from helppet_recordings.metrics import RecordingMetrics
from helppet_recordings.ports import RecordingStorage
from helppet_recordings.service import RecordingService
from helppet_recordings.settings import RecordingSettings
from helppet_recordings.storage.local import MIN_SECRET_LENGTH, LocalStorage

if TYPE_CHECKING:
    from helppet_recordings.repositories.sqlalchemy import SqlAlchemyRepository

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
}


class ConfigurationError(RecordingError, ValueError):
    """The environment does not describe a working deployment; the message says what to set."""

    error_code = "CONFIGURATION_ERROR"
    http_status = 500
    default_message = "The deployment is not configured correctly"


def _alias(field: str) -> AliasChoices:
    return AliasChoices(field, _VARIABLES[field])


def _default_database_url() -> str:
    return f"sqlite:///{Path.cwd() / DEFAULT_DATABASE_FILE}"


def _default_local_storage_dir() -> Path:
    return Path.cwd() / DEFAULT_LOCAL_STORAGE_DIR


class _EnvironmentSource(EnvSettingsSource):
    """The process environment, except for the nested ``recording`` settings.

    Those read their own variables (``S3_BUCKET_NAME``, ...) through
    :class:`RecordingSettings`; no variable named ``RECORDING`` is consulted.
    """

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        if field_name == "recording":
            return None, field_name, False
        return super().get_field_value(field, field_name)


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
        env_ignore_empty=True,
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
    recording: RecordingSettings = Field(default_factory=RecordingSettings)

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
        return (
            init_settings,
            _EnvironmentSource(settings_cls, case_sensitive=False, env_ignore_empty=True),
        )

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, cwd: Path | None = None
    ) -> DeploymentSettings:
        """Read the settings from ``environ`` (default: the process environment).

        Defaults that name files (the SQLite database, LocalStorage's
        directory) are placed in ``cwd`` (default: the working directory).
        Raises :class:`ConfigurationError` naming each variable that is wrong.
        """
        source = os.environ if environ is None else environ
        env = {name.upper(): value for name, value in source.items() if value.strip()}
        here = Path.cwd() if cwd is None else cwd
        values: dict[str, Any] = {
            variable: env[variable] for variable in _VARIABLES.values() if variable in env
        }
        values.setdefault("DATABASE_URL", f"sqlite:///{here / DEFAULT_DATABASE_FILE}")
        values.setdefault("HELPPET_LOCAL_STORAGE_DIR", str(here / DEFAULT_LOCAL_STORAGE_DIR))
        recording_names = {
            _env_name(name, info) for name, info in RecordingSettings.model_fields.items()
        }
        problems: list[dict[str, str]] = []
        try:
            values["recording"] = _from_mapping(
                RecordingSettings,
                {name: value for name, value in env.items() if name in recording_names},
            )
        except pydantic.ValidationError as exc:
            problems += _problems(exc, RecordingSettings)
            values["recording"] = _from_mapping(RecordingSettings, {})
        try:
            settings = _from_mapping(cls, values)
        except pydantic.ValidationError as exc:
            problems += _problems(exc, cls)
        if problems:
            raise _configuration_error(problems)
        return settings

    @classmethod
    def load(cls) -> DeploymentSettings:
        """Read the process environment; raise :class:`ConfigurationError` if it is wrong."""
        return cls.from_env()

    @field_validator("storage", mode="before")
    @classmethod
    def _storage_kind(cls, value: object) -> object:
        if isinstance(value, str):
            kind = value.strip().lower()
            if kind not in STORAGE_KINDS:
                msg = f"must be 'local' or 's3', not {value!r}"
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
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(origin.strip() for origin in value.split(",") if origin.strip())
        return value

    @field_validator("cors_origins")
    @classmethod
    def _check_origins(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        origins: list[str] = []
        for origin in value:
            normalized = origin.rstrip("/")
            parts = urllib.parse.urlsplit(normalized)
            if (
                parts.scheme not in {"http", "https"}
                or not parts.netloc
                or parts.path
                or parts.query
                or parts.fragment
            ):
                msg = (
                    f"{origin!r} is not a browser origin: write scheme://host[:port], "
                    "e.g. https://app.example.com"
                )
                raise ValueError(msg)
            if normalized not in origins:
                origins.append(normalized)
        return tuple(origins)

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


_Settings = TypeVar("_Settings", bound=BaseSettings)


@functools.cache
def _mapping_only(model: type[_Settings]) -> type[_Settings]:
    """Return a subclass of ``model`` that reads only its keyword arguments, no environment."""

    def sources(
        cls: type[BaseSettings],
        /,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        **_others: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)

    namespace = {"settings_customise_sources": classmethod(sources), "__module__": __name__}
    return type(f"_MappingOnly{model.__name__}", (model,), namespace)


def _from_mapping(model: type[_Settings], values: Mapping[str, Any]) -> _Settings:
    """Validate ``values`` (by environment variable name) into ``model``, and nothing else."""
    validated = _mapping_only(model)(**values)
    return model.model_construct(**dict(validated))


def _env_name(field: str, info: FieldInfo) -> str:
    """Return the environment variable a settings field is read from (upper case)."""
    alias = info.validation_alias
    if isinstance(alias, AliasChoices):
        names = [choice for choice in alias.choices if isinstance(choice, str)]
        if names:
            return names[-1].upper()
    return field.upper()


def _problems(
    exc: pydantic.ValidationError, model: type[pydantic.BaseModel]
) -> list[dict[str, str]]:
    """Each validation problem with the variable to fix; rejected values are never quoted.

    A value may be a secret or a URL with a password in it.
    """
    variables = {
        name: _VARIABLES.get(name, _env_name(name, info))
        for name, info in model.model_fields.items()
    }
    variables.update({variable: variable for variable in variables.values()})
    problems: list[dict[str, str]] = []
    for error in exc.errors(include_url=False, include_input=False, include_context=False):
        head = str(error["loc"][0]) if error["loc"] else "environment"
        message = str(error["msg"]).removeprefix("Value error, ")
        problems.append({"variable": variables.get(head, head), "message": message})
    return problems


def _configuration_error(problems: list[dict[str, str]]) -> ConfigurationError:
    text = "; ".join(f"{problem['variable']}: {problem['message']}" for problem in problems)
    return ConfigurationError(f"Invalid configuration: {text}", errors=problems)


# ------------------------------------------------------------------------------ backends


@attrs.frozen(kw_only=True)
class Backends:
    """What a deployment runs on: the service, its storage and repository.

    ``local_storage`` is the storage again when it is a :class:`LocalStorage`
    (an HTTP adapter serves its routes), else None. ``close`` releases the
    database connections.
    """

    service: RecordingService
    storage: RecordingStorage
    repository: SqlAlchemyRepository
    local_storage: LocalStorage | None = None
    jwt_secret: str | None = attrs.field(default=None, repr=False)
    close: Callable[[], None] = lambda: None


def build_storage(
    environment: DeploymentSettings, *, s3_options: Mapping[str, Any] | None = None
) -> RecordingStorage:
    """Build the storage backend ``HELPPET_STORAGE`` names.

    ``s3_options`` are further keyword arguments for ``S3Storage``
    (``connect_timeout``, ``read_timeout``, ``max_attempts``). Raises
    :class:`ConfigurationError` when LocalStorage has no usable secret or
    directory, and ``MissingDependencyError`` when the backend's extra is not
    installed.
    """
    if environment.storage == "s3":
        # Imported here: the s3 extra is needed only for this backend.
        from helppet_recordings.storage.s3 import S3Storage  # noqa: PLC0415

        try:
            return S3Storage(
                environment.recording.s3_bucket_name,
                region_name=environment.recording.aws_region,
                **(s3_options or {}),
            )
        except ValueError as exc:  # botocore refuses e.g. a malformed AWS_ENDPOINT_URL
            msg = f"The S3 client cannot be configured: {exc}"
            raise ConfigurationError(msg, variable="AWS_ENDPOINT_URL") from exc
    secret = environment.local_secret()
    if secret is None:
        msg = (
            "LocalStorage needs a signing secret: set HELPPET_LOCAL_STORAGE_SECRET "
            f"(at least {MIN_SECRET_LENGTH} characters) or HELPPET_JWT_SECRET"
        )
        raise ConfigurationError(msg, variable="HELPPET_LOCAL_STORAGE_SECRET")
    try:
        return LocalStorage(
            environment.local_storage_dir,
            environment.public_base_url + LOCAL_STORAGE_PATH,
            secret,
        )
    except OSError as exc:
        msg = (
            "HELPPET_LOCAL_STORAGE_DIR cannot be used: "
            f"{exc.strerror or type(exc).__name__} ({environment.local_storage_dir})"
        )
        raise ConfigurationError(msg, variable="HELPPET_LOCAL_STORAGE_DIR") from exc


def build_repository(
    environment: DeploymentSettings, *, engine_options: Mapping[str, Any] | None = None
) -> SqlAlchemyRepository:
    """Build the SQL repository ``DATABASE_URL`` names (without touching the database).

    ``engine_options`` are further keyword arguments for
    ``SqlAlchemyRepository.from_url`` (``pool_size``, ``max_overflow``,
    ``pool_pre_ping``, ``pool_recycle``). Raises :class:`ConfigurationError`
    for a URL SQLAlchemy cannot parse and ``MissingDependencyError`` when the
    driver's extra is not installed.
    """
    # Imported here: the sql extra is needed only when a database is used.
    import sqlalchemy.exc  # noqa: PLC0415

    from helppet_recordings.repositories.sqlalchemy import SqlAlchemyRepository  # noqa: PLC0415

    try:
        return SqlAlchemyRepository.from_url(environment.database_url, **(engine_options or {}))
    except sqlalchemy.exc.ArgumentError as exc:
        msg = (
            "DATABASE_URL is not a SQLAlchemy database URL "
            "(e.g. postgresql+psycopg://user@host/dbname or sqlite:///recordings.db)"
        )
        raise ConfigurationError(msg, variable="DATABASE_URL") from exc


def build_backends(
    environment: DeploymentSettings | None = None,
    settings: RecordingSettings | None = None,
    *,
    create_schema: bool = False,
    engine_options: Mapping[str, Any] | None = None,
    metrics: RecordingMetrics | None = None,
) -> Backends:
    """Build storage, repository and service from ``environment`` (default: the process's).

    ``settings`` overrides ``environment.recording``. With ``create_schema``
    the database is brought to the current schema first (as
    ``helppet-recordings migrate`` does). ``engine_options`` go to
    :func:`build_repository` (the connection pool); ``metrics`` is the
    service's ``RecordingMetrics`` (default: on the global meter provider).
    Nothing is left open when this raises.
    """
    environment = DeploymentSettings.load() if environment is None else environment
    settings = environment.recording if settings is None else settings
    storage = build_storage(environment)
    repository = build_repository(environment, engine_options=engine_options)
    try:
        if create_schema:
            repository.create_schema()
        service = RecordingService(
            storage=storage, repository=repository, settings=settings, metrics=metrics
        )
    except BaseException:
        repository.close()
        raise
    return Backends(
        service=service,
        storage=storage,
        repository=repository,
        local_storage=storage if isinstance(storage, LocalStorage) else None,
        jwt_secret=(
            None if environment.jwt_secret is None else environment.jwt_secret.get_secret_value()
        ),
        close=repository.close,
    )
