"""What the commands share: the reporting options, error handling, the deployment's backends."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Final, ParamSpec, TypeVar

import click

from helppet_recordings.cli._database import missing_sqlite_file, opening_only
from helppet_recordings.cli._observed import observed
from helppet_recordings.cli._output import USAGE_ERROR, Output
from helppet_recordings.environment import (
    Backends,
    ConfigurationError,
    DeploymentSettings,
    build_backends,
    build_repository,
)
from helppet_recordings.errors import MissingDependencyError, RecordingError, RepositoryError
from helppet_recordings.service import RecordingService

if TYPE_CHECKING:
    from helppet_recordings.repositories.sqlalchemy import SqlAlchemyRepository
    from helppet_recordings.settings import RecordingSettings
    from helppet_recordings.transcription import Transcriber

__all__ = [
    "PROBLEMS_FOUND",
    "CommandGroup",
    "CommandLineError",
    "deployment_backends",
    "deployment_repository",
    "deployment_transcriber",
    "existing_database",
    "job",
    "reported_errors",
    "reporting",
]

PROBLEMS_FOUND: Final = 1
"""The exit status of a command that found (or met) problems."""

P = ParamSpec("P")
R = TypeVar("R")

_PROGRESS_HELP: Final = "Show progress on stderr (default: when stdout is a terminal)."
_JSON_REQUESTED: Final = "helppet_recordings.cli.json"


class CommandLineError(RecordingError):
    """A bad command line (click's usage error), reported as JSON under ``--json``.

    ``details["parameter"]`` names the option or argument at fault, when click
    says which.
    """

    error_code = "USAGE_ERROR"
    http_status = 400
    default_message = "The command line is not valid"

    @classmethod
    def from_click(cls, error: click.UsageError) -> CommandLineError:
        """Return the error reporting click's ``error`` (its message, the parameter)."""
        param = getattr(error, "param", None)
        if isinstance(param, click.Option):
            return cls(error.format_message(), parameter=param.opts[0])
        if isinstance(param, click.Parameter):
            return cls(error.format_message(), parameter=param.human_readable_name)
        return cls(error.format_message())


class CommandGroup(click.Group):
    """The command group: with ``--json`` on the command line, usage errors are JSON too.

    click reports a bad option or argument (and a ``click.UsageError`` a
    command raises) as text on stderr. When ``--json`` was given, it is
    instead one JSON document on stdout, as every other error; exit status 2.
    """

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        """Parse the command line, noting whether ``--json`` was asked for."""
        options = args[: args.index("--")] if "--" in args else args
        json_mode = "--json" in options
        with _usage_errors_as_json(json_mode=json_mode):
            ctx = super().make_context(info_name, args, parent, **extra)
        ctx.meta[_JSON_REQUESTED] = json_mode
        return ctx

    def invoke(self, ctx: click.Context) -> Any:
        """Run the subcommand; its usage errors are JSON when ``--json`` was asked for."""
        with _usage_errors_as_json(json_mode=bool(ctx.meta.get(_JSON_REQUESTED))):
            return super().invoke(ctx)


@contextlib.contextmanager
def _usage_errors_as_json(*, json_mode: bool) -> Iterator[None]:
    try:
        yield
    except click.UsageError as error:
        if not json_mode:
            raise
        failure = Output(json_mode=True).fail(
            CommandLineError.from_click(error), status=USAGE_ERROR
        )
        raise failure from None


def reporting(
    progress_help: str = _PROGRESS_HELP,
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Add ``--json`` and ``--progress/--no-progress`` to a command."""

    def add(command: Callable[P, R]) -> Callable[P, R]:
        command = click.option(
            "--progress/--no-progress", "progress", default=None, help=progress_help
        )(command)
        return click.option("--json", "json_mode", is_flag=True, help="Report as JSON.")(command)

    return add


@contextlib.contextmanager
def reported_errors(output: Output) -> Iterator[None]:
    """Turn the package's errors into a report and an exit status (2: configuration, 1: other)."""
    try:
        yield
    except (ConfigurationError, MissingDependencyError) as error:
        raise output.fail(error, status=USAGE_ERROR) from None
    except RecordingError as error:
        raise output.fail(error, status=PROBLEMS_FOUND) from None


def existing_database(environment: DeploymentSettings) -> DeploymentSettings:
    """Return ``environment`` with a database that connecting can only open, never create.

    Every command but ``migrate`` uses an existing database: a SQLite file that
    does not exist is ``DATABASE_ERROR`` saying to run ``migrate`` (connecting
    would create an empty file, which hides the mistake from ``doctor``), and
    the file is opened read-write only (``mode=rw``), so it cannot be created
    after this check either. A URL SQLAlchemy cannot parse is left for
    ``build_repository`` to report.
    """
    import sqlalchemy as sa  # noqa: PLC0415 - the cli extra brings the sql one
    import sqlalchemy.exc  # noqa: PLC0415

    try:
        missing = missing_sqlite_file(sa.make_url(environment.database_url))
    except (sa.exc.ArgumentError, ValueError):
        return environment
    if missing is not None:
        msg = (
            f"The SQLite database file {missing} does not exist: run `helppet-recordings "
            "migrate` first to create it, or fix DATABASE_URL"
        )
        raise RepositoryError(msg, database_file=missing)
    return opening_only(environment)


def _existing_storage(environment: DeploymentSettings) -> None:
    """Refuse a LocalStorage directory that does not exist (building LocalStorage creates it).

    The commands only read, move or delete what the API stored there: a
    missing directory is a wrong ``HELPPET_LOCAL_STORAGE_DIR`` (or an API that
    never started), and an empty one made in its place would hide it.
    """
    directory = environment.local_storage_dir
    if environment.storage == "local" and not directory.is_dir():
        what = "is not a directory" if directory.exists() else "does not exist"
        msg = (
            f"HELPPET_LOCAL_STORAGE_DIR ({directory}) {what}: fix the variable, or start "
            "the API once (it creates the directory)"
        )
        raise ConfigurationError(msg, variable="HELPPET_LOCAL_STORAGE_DIR")


@contextlib.contextmanager
def deployment_backends() -> Iterator[Backends]:
    """Build the backends the environment describes over what exists; close them afterwards.

    Nothing is created: the database must exist (see :func:`existing_database`)
    and so must LocalStorage's directory.
    """
    environment = existing_database(DeploymentSettings.load())
    _existing_storage(environment)
    backends = build_backends(environment)
    try:
        yield backends
    finally:
        backends.close()


@contextlib.contextmanager
def deployment_repository() -> Iterator[SqlAlchemyRepository]:
    """Build only the repository the environment describes (no storage); close it afterwards.

    The database must exist (see :func:`existing_database`).
    """
    repository = build_repository(existing_database(DeploymentSettings.load()))
    try:
        yield repository
    finally:
        repository.close()


def deployment_transcriber(name: str, settings: RecordingSettings) -> Transcriber:
    """Build the transcriber ``name``; one the environment cannot build is a ConfigurationError.

    Amazon Transcribe runs in the deployment's ``AWS_REGION``: botocore
    itself reads only ``AWS_DEFAULT_REGION``.
    """
    from helppet_recordings.transcription import (  # noqa: PLC0415 - optional extras
        TranscriberConfigurationError,
        get_transcriber,
    )

    options = {"region_name": settings.aws_region} if name == "aws" else {}
    try:
        return get_transcriber(name, **options)
    except TranscriberConfigurationError as exc:
        msg = f"The {name} transcriber cannot be built: {exc.message}"
        raise ConfigurationError(msg) from exc


@contextlib.contextmanager
def job(output: Output, description: str, unit: str) -> Iterator[RecordingService]:
    """Run a batch job over the deployment's backends, its storage calls counted as progress."""
    with (
        reported_errors(output),
        deployment_backends() as backends,
        output.progress(description, unit) as advance,
    ):
        yield observed(backends, advance)
