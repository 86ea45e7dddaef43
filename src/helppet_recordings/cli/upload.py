"""``helppet-recordings upload FILE``: the Python uploader from a shell, with a progress bar.

Talks to the HTTP API (``--api``, default ``HELPPET_API_URL`` or
``http://127.0.0.1:8000``) with a bearer token (``--token`` or
``HELPPET_API_TOKEN``). The upload resumes from ``<FILE>.upload-state.json``
(``--state-file``) when an earlier run was interrupted. Needs the ``client``
extra besides ``cli``.

While the command runs, a retried request is reported in one line of its own
on stderr (nothing with ``--json``) instead of stamina's instrumentation,
which is restored afterwards.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import click

from helppet_recordings.cli._output import USAGE_ERROR, Output
from helppet_recordings.cli._running import PROBLEMS_FOUND, reporting
from helppet_recordings.errors import MissingDependencyError, RecordingError
from helppet_recordings.status import RecordingType

if TYPE_CHECKING:
    from rich.console import Console
    from stamina.instrumentation import RetryDetails

    from helppet_recordings.schemas import RecordingResponse

__all__ = ["upload"]

DEFAULT_API = "http://127.0.0.1:8000"
STATE_SUFFIX = ".upload-state.json"


@click.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--api",
    envvar="HELPPET_API_URL",
    default=DEFAULT_API,
    show_default=True,
    help="The API's base URL (or HELPPET_API_URL).",
)
@click.option("--token", envvar="HELPPET_API_TOKEN", help="Bearer token (or HELPPET_API_TOKEN).")
@click.option("--appointment-id", type=click.UUID, help="The appointment the recording is of.")
@click.option("--visit-id", type=click.UUID, help="The visit the recording is of.")
@click.option(
    "--type",
    "recording_type",
    type=click.Choice([kind.value for kind in RecordingType]),
    default=RecordingType.VISIT_AUDIO.value,
    show_default=True,
)
@click.option("--content-type", help="Audio MIME type (default: from the file's extension).")
@click.option("--duration", type=click.FloatRange(min=0), help="Seconds of audio, if known.")
@click.option("--parallel", type=click.IntRange(1, 32), default=4, show_default=True)
@click.option(
    "--state-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help=f"Where to keep resume state (default: FILE{STATE_SUFFIX}).",
)
@reporting("Show a progress bar on stderr (default: when stdout is a terminal).")
def upload(
    *,
    file: Path,
    api: str,
    token: str | None,
    appointment_id: uuid.UUID | None,
    visit_id: uuid.UUID | None,
    recording_type: str,
    content_type: str | None,
    duration: float | None,
    parallel: int,
    state_file: Path | None,
    json_mode: bool,
    progress: bool | None,
) -> None:
    """Upload FILE as a recording: one POST or parallel parts, retried, resumable.

    Exit status: 0 uploaded, 1 refused or failed, 2 usage error.
    """
    if not token:
        raise click.UsageError("a token is required: --token or HELPPET_API_TOKEN")
    output = Output(json_mode=json_mode, progress=progress)
    try:
        from helppet_recordings.client import RecordingUploader  # noqa: PLC0415 - client extra
    except MissingDependencyError as error:
        raise output.fail(error, status=USAGE_ERROR) from None
    state = state_file or file.with_name(file.name + STATE_SUFFIX)
    try:
        with (
            _retries_reported(output),
            RecordingUploader(api, token=token, parallel=parallel) as uploader,
            _bar(output, file.stat().st_size) as advance,
        ):
            recording = uploader.upload(
                file,
                content_type=content_type,
                appointment_id=appointment_id,
                visit_id=visit_id,
                recording_type=recording_type,
                duration_seconds=duration,
                state_file=state,
                progress=advance,
            )
    except RecordingError as error:
        if json_mode:
            raise output.fail(error, status=PROBLEMS_FOUND) from None
        click.echo(f"Error: {error.message} ({error.error_code})", err=True)
        raise click.exceptions.Exit(PROBLEMS_FOUND) from None
    output.report(
        {"ok": True, "recording": recording.model_dump(mode="json")},
        lambda console: _text(console, recording),
    )


def _text(console: Console, recording: RecordingResponse) -> None:
    console.print(
        f"Uploaded recording {recording.id}: {recording.file_size_bytes} bytes, "
        f"status {recording.status.value}."
    )


@contextlib.contextmanager
def _bar(output: Output, total: int) -> Iterator[Callable[[int, int], None]]:
    """Show a transfer bar on stderr when progress is shown; yield the uploader's callback."""
    if not output.show_progress:
        yield lambda _sent, _total: None
        return
    from rich.progress import (  # noqa: PLC0415 - only with a bar
        BarColumn,
        DownloadColumn,
        Progress,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    columns = (BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=output.progress_console) as bar:
        task = bar.add_task("Uploading", total=total)
        yield lambda sent, _total: bar.update(task, completed=sent)


@contextlib.contextmanager
def _retries_reported(output: Output) -> Iterator[None]:
    """Report retries in the command's words on stderr (none with ``--json``) while it runs.

    stamina calls its retry hooks, process-wide, for every retry; by default
    they log ``stamina.retry_scheduled`` (and count it for Prometheus). They
    are replaced for the command only and restored on the way out.
    """
    from stamina import instrumentation  # noqa: PLC0415 - the client extra, checked by now

    console = output.progress_console

    def report(details: RetryDetails) -> None:
        console.print(
            f"Retrying in {details.wait_for:.1f} s (retry {details.retry_num}): "
            f"{_retry_cause(details.caused_by)}.",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )

    previous = instrumentation.get_on_retry_hooks()
    instrumentation.set_on_retry_hooks(() if output.json_mode else (report,))
    try:
        yield
    finally:
        instrumentation.set_on_retry_hooks(previous)


def _retry_cause(exc: Exception) -> str:
    """Say why a request is retried, never naming its URL (a signed URL is a credential)."""
    import httpx  # noqa: PLC0415 - the client extra

    from helppet_recordings.client._retry import RetryableResponseError  # noqa: PLC0415

    if isinstance(exc, RetryableResponseError):
        return f"the server answered HTTP {exc.response.status_code}"
    if isinstance(exc, httpx.TimeoutException):
        return "the request timed out"
    if isinstance(exc, httpx.ConnectError):
        return "the server could not be reached"
    return f"the connection failed ({type(exc).__name__})"
