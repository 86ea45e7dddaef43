"""Command-line parameter types of the commands."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Final

import click

if TYPE_CHECKING:
    _DateTimeParam = click.ParamType[dt.datetime]
else:  # click before 8.2 has no generic ParamType at run time
    _DateTimeParam = click.ParamType


class _IsoTime(_DateTimeParam):
    """An ISO 8601 date or time, returned in UTC; one without a zone is taken as UTC."""

    name = "ISO-TIME"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> dt.datetime:
        """Parse ``value`` (``2026-11-01``, ``2026-11-01T08:00:00+01:00``, ``...Z``)."""
        if isinstance(value, dt.datetime):
            return value
        try:
            parsed = dt.datetime.fromisoformat(str(value))
        except ValueError:
            self.fail(f"{value!r} is not an ISO 8601 date or time", param, ctx)
        aware = parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=dt.UTC)
        try:
            return aware.astimezone(dt.UTC)
        except OverflowError:  # 0001-01-01T00:00+01:00 has no UTC form
            self.fail(f"{value!r} is outside the range of dates", param, ctx)


ISO_TIME: Final = _IsoTime()
