"""What ``doctor`` and ``bucket-setup`` report: one finding per check."""

from __future__ import annotations

import enum
from typing import Any

import attrs

__all__ = ["Finding", "Status", "exit_status"]


class Status(enum.StrEnum):
    """How a check came out."""

    OK = "ok"
    """As it should be."""
    WARN = "warn"
    """Works, but should be looked at; also used for what could not be checked."""
    FAIL = "fail"
    """Broken: uploads, downloads or the jobs will fail, or data is at risk."""


@attrs.frozen(kw_only=True)
class Finding:
    """The outcome of one check: its name, status, what was found and how to fix it."""

    check: str
    """A stable name, e.g. ``s3.cors``; scripts may branch on it."""
    status: Status
    message: str
    fix: str | None = None
    """What to do about it (None when there is nothing to do)."""

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON shape: ``check``, ``status``, ``message``, ``fix``."""
        return {
            "check": self.check,
            "status": self.status.value,
            "message": self.message,
            "fix": self.fix,
        }


def exit_status(findings: list[Finding], *, strict: bool = False) -> int:
    """Return 1 when any finding failed (or, with ``strict``, warned), else 0."""
    bad = {Status.FAIL, Status.WARN} if strict else {Status.FAIL}
    return 1 if any(finding.status in bad for finding in findings) else 0
