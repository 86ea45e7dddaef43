"""What the commands share: the reporting options, error handling, the deployment's backends."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Final, ParamSpec, TypeVar

import click

from helppet_recordings.cli._observed import observed
from helppet_recordings.cli._output import USAGE_ERROR, Output
from helppet_recordings.environment import (
    Backends,
    ConfigurationError,
    DeploymentSettings,
    build_backends,
)
from helppet_recordings.errors import MissingDependencyError, RecordingError
from helppet_recordings.service import RecordingService

__all__ = ["PROBLEMS_FOUND", "deployment_backends", "job", "reported_errors", "reporting"]

PROBLEMS_FOUND: Final = 1
"""The exit status of a command that found (or met) problems."""

P = ParamSpec("P")
R = TypeVar("R")

_PROGRESS_HELP: Final = "Show progress on stderr (default: when stdout is a terminal)."


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


@contextlib.contextmanager
def deployment_backends() -> Iterator[Backends]:
    """Build the backends the environment describes; close them afterwards."""
    backends = build_backends(DeploymentSettings.load())
    try:
        yield backends
    finally:
        backends.close()


@contextlib.contextmanager
def job(output: Output, description: str, unit: str) -> Iterator[RecordingService]:
    """Run a batch job over the deployment's backends, its storage calls counted as progress."""
    with (
        reported_errors(output),
        deployment_backends() as backends,
        output.progress(description, unit) as advance,
    ):
        yield observed(backends, advance)
