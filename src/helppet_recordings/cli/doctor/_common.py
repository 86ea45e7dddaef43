"""What every doctor check shares: the S3 client options, the clock type, finding helpers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from helppet_recordings.cli.findings import Finding, Status

DOCTOR_S3_OPTIONS: Final = {"connect_timeout": 5.0, "read_timeout": 15.0, "max_attempts": 2}
"""Doctor gives up on an unreachable endpoint sooner than the service does."""

_MESSAGE_LIMIT: Final = 200

Clock = Callable[[], float]


def _finding(check: str, status: Status, message: str, fix: str | None = None) -> Finding:
    return Finding(check=check, status=status, message=message, fix=fix)


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    line = text[0] if text else type(error).__name__
    return line[:_MESSAGE_LIMIT]
