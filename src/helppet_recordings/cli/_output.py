"""How commands talk: JSON or rich text on stdout, errors and progress on stderr."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Iterator
from typing import Any

import click

from helppet_recordings.errors import MissingDependencyError, RecordingError

try:
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingDependencyError("rich", "cli") from exc

Advance = Callable[[int], None]

USAGE_ERROR = 2
"""Exit status for a bad command line or configuration."""


class Output:
    """One command's output: JSON (``--json``) or text, and optional progress.

    Progress is drawn on stderr, only when stdout is a terminal unless
    ``progress`` says otherwise, and never mixes with the report.
    """

    def __init__(self, *, json_mode: bool, progress: bool | None = None) -> None:
        self.json_mode = json_mode
        self.console = Console(highlight=False, soft_wrap=True)
        forced = progress is True
        self.show_progress = sys.stdout.isatty() if progress is None else progress
        self.progress_console = Console(stderr=True, force_terminal=forced or None)

    def report(self, payload: dict[str, Any], text: Callable[[Console], None]) -> None:
        """Print ``payload`` as JSON with ``--json``, else let ``text`` write to the console."""
        if self.json_mode:
            click.echo(json.dumps(payload, indent=2, default=str))
        else:
            text(self.console)

    def fail(self, error: RecordingError, *, status: int) -> click.exceptions.Exit:
        """Report ``error`` (as JSON with ``--json``, else on stderr); return the exit to raise."""
        if self.json_mode:
            click.echo(json.dumps({"ok": False, "error": error.to_dict()}, indent=2, default=str))
        else:
            reason = error.details.get("reason") or error.details.get("storage_error")
            click.echo(f"Error: {error.message}" + (f" ({reason})" if reason else ""), err=True)
            if status != USAGE_ERROR:
                click.echo("Run `helppet-recordings doctor` to check the deployment.", err=True)
        return click.exceptions.Exit(status)

    @contextlib.contextmanager
    def progress(self, description: str, unit: str) -> Iterator[Advance]:
        """Show a spinner counting ``unit`` while the block runs; yield the counter."""
        if not self.show_progress:
            yield lambda _count: None
            return
        columns = (
            SpinnerColumn(),
            TextColumn("{task.description}"),
            TextColumn("{task.completed} " + unit),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=self.progress_console, transient=False) as bar:
            task = bar.add_task(description, total=None)
            yield lambda count: bar.advance(task, count)
