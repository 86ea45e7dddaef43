"""Building the backends a deployment's settings describe: storage, repository, service."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

import attrs

from helppet_recordings.environment.settings import DeploymentSettings
from helppet_recordings.environment.variables import LOCAL_STORAGE_PATH, ConfigurationError
from helppet_recordings.metrics import RecordingMetrics
from helppet_recordings.ports import RecordingStorage
from helppet_recordings.service import RecordingService
from helppet_recordings.settings import RecordingSettings
from helppet_recordings.storage.local import MIN_SECRET_LENGTH, LocalStorage

if TYPE_CHECKING:
    from helppet_recordings.repositories.sqlalchemy import SqlAlchemyRepository

_DATABASE_EXAMPLES: Final = (
    "(e.g. postgresql+psycopg://user@host/dbname or sqlite:///recordings.db)"
)


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

    ``S3Storage`` gets ``checksum_tickets`` from ``HELPPET_S3_CHECKSUM_TICKETS``;
    ``s3_options`` are further keyword arguments for it (``connect_timeout``,
    ``read_timeout``, ``max_attempts``), and win over the environment. Raises
    :class:`ConfigurationError` naming the variable when LocalStorage has no
    usable secret or directory, or botocore refuses ``AWS_REGION`` or the
    endpoint (``AWS_ENDPOINT_URL_S3``, ``AWS_ENDPOINT_URL``), and
    ``MissingDependencyError`` when the backend's extra is not installed.
    """
    if environment.storage == "s3":
        # Imported here: the s3 extra is needed only for this backend.
        import botocore.exceptions  # noqa: PLC0415

        from helppet_recordings.storage.s3 import S3Storage  # noqa: PLC0415
        from helppet_recordings.storage.s3._client import environment_endpoint  # noqa: PLC0415

        options = {"checksum_tickets": environment.s3_checksum_tickets, **(s3_options or {})}
        try:
            return S3Storage(
                environment.recording.s3_bucket_name,
                region_name=environment.recording.aws_region,
                **options,
            )
        except botocore.exceptions.InvalidRegionError:
            msg = (
                "AWS_REGION is not a region name: letters, digits and '-' "
                "(e.g. eu-central-1)"
            )  # botocore's message quotes the value
            raise ConfigurationError(msg, variable="AWS_REGION") from None
        except ValueError:  # botocore refuses a malformed endpoint URL
            configured = environment_endpoint()
            if configured is None:  # not the environment's doing: one of the caller's s3_options
                raise
            variable = configured[0]
            msg = f"{variable} is not a usable URL (e.g. http://127.0.0.1:8333)"
            raise ConfigurationError(msg, variable=variable) from None
        except botocore.exceptions.BotoCoreError as exc:  # no such AWS_PROFILE, half the keys
            msg = f"The S3 client cannot be created: {exc}"
            raise ConfigurationError(msg) from exc
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
    for a URL SQLAlchemy cannot parse or a database the package does not run
    on, and ``MissingDependencyError`` when psycopg (the ``postgres`` extra) is
    not installed.
    """
    # Imported here: the sql extra is needed only when a database is used.
    import sqlalchemy  # noqa: PLC0415
    import sqlalchemy.exc  # noqa: PLC0415

    from helppet_recordings.repositories.sqlalchemy import SqlAlchemyRepository  # noqa: PLC0415

    try:
        url = sqlalchemy.make_url(environment.database_url)
    except (sqlalchemy.exc.ArgumentError, ValueError):  # ValueError: a port that is no number
        raise ConfigurationError(
            "DATABASE_URL is not a SQLAlchemy database URL " + _DATABASE_EXAMPLES,
            variable="DATABASE_URL",
        ) from None  # the parser's message may quote the URL, password included
    try:
        return SqlAlchemyRepository.from_url(url, **(engine_options or {}))
    except (sqlalchemy.exc.NoSuchModuleError, ModuleNotFoundError):
        raise ConfigurationError(
            f"DATABASE_URL names a database this package does not run on ({url.drivername}); "
            "it runs on PostgreSQL with psycopg 3 and on SQLite " + _DATABASE_EXAMPLES,
            variable="DATABASE_URL",
        ) from None


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
