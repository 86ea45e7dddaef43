"""The ``helppet-recordings`` command: operate a deployment from a shell, cron or a pipeline.

Installed with the ``cli`` extra (``pip install 'helppet-recordings[cli]'``),
configured from the same environment as the example app (see
:mod:`helppet_recordings.environment`). Commands: ``migrate``, ``sweep``,
``reconcile``, ``purge``, ``stats``, ``worker``, ``doctor`` and ``bucket-setup``; each
takes ``--json``. Exit status: 0 when all is well, 1 when the command found
problems, 2 for usage and configuration errors.

:mod:`~helppet_recordings.cli.doctor` and :mod:`~helppet_recordings.cli.bucket`
need neither click nor rich and can be used from Python (a health endpoint,
say).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from helppet_recordings.errors import MissingDependencyError

__all__ = ["main"]

USAGE_ERROR = 2
"""Exit status for a bad command line, a bad configuration or a missing extra."""


def main(argv: Sequence[str] | None = None) -> None:
    """Run the command line (the ``helppet-recordings`` entry point); exits the process."""
    try:
        from helppet_recordings.cli._app import cli  # noqa: PLC0415 - needs the cli extra
    except MissingDependencyError as exc:
        print(exc.message, file=sys.stderr)
        sys.exit(USAGE_ERROR)
    cli.main(args=None if argv is None else list(argv), prog_name="helppet-recordings")
