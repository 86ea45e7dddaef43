"""The audit trail's and the statistics' statements, and their rows.

Kept apart from :mod:`.statements` (the recordings' reads and writes): the
audit statements touch only the audit table, and only with ``INSERT`` and
``SELECT``; the statistics are one aggregate ``SELECT`` over the recordings.

Statistics are computed in the database, whatever its size: PostgreSQL with
``percentile_cont(...) WITHIN GROUP``, SQLite (which has no percentile
function) by ranking each quantity with ``row_number()`` and picking the one
or two ranks each percentile interpolates between. Either way a single row
comes back.

An upload deleted before it arrived counts as ``failed``
(:func:`~helppet_recordings.stats.counted_status`). The statistics index does
not carry ``is_deleted`` (reading it in the window's scan would cost the
index-only scan), so the window's live uploads are counted apart, by two
scalar subqueries on the sweep's partial index (live ``uploading`` rows only,
a handful), and the difference moves to ``failed``: one statement still,
one snapshot.

On PostgreSQL the sorts are the cost: one per distribution, whatever the
number of percentiles. The extremes come from the same sort (the
percentiles 0 and 1 are the first and last values), and the mean from
``sum / count`` (what ``avg(float8)`` computes, with a cheaper step per
row), so each row feeds three aggregates per distribution instead of five.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from helppet_recordings.audit import AuditEntry
from helppet_recordings.repositories.sqlalchemy.mapping import (
    to_audit_entry,
    to_audit_row,
    to_db_time,
)
from helppet_recordings.repositories.sqlalchemy.schema import STALE_UPLOAD_PREDICATE
from helppet_recordings.stats import (
    PERCENTILES,
    Distribution,
    RepositoryStats,
    UploadCounts,
)
from helppet_recordings.status import RecordingStatus

__all__ = [
    "RAISE_WORK_MEM",
    "STATS_WORK_MEM",
    "AuditStatements",
    "StatsStatements",
    "to_audit_entry",
    "to_audit_row",
    "to_repository_stats",
    "window_params",
]

_DISTRIBUTIONS: Final = (
    "file_size_bytes",
    "duration_seconds",
    "audio_duration_seconds",
    "processing_seconds",
)
STATS_WORK_MEM: Final = "64MB"
"""The least ``work_mem`` the PostgreSQL statistics transaction runs with.

Each distribution's sort keeps 24 bytes per value in memory; below this
(PostgreSQL's default is 4 MB) the sorts of a million values spill to
temporary files. A higher setting of the session or server is kept.
"""

RAISE_WORK_MEM: Final = sa.text(
    "SELECT set_config('work_mem', :work_mem, true)"
    " WHERE pg_size_bytes(current_setting('work_mem')) < pg_size_bytes(:work_mem)"
).bindparams(work_mem=STATS_WORK_MEM)
"""Raise ``work_mem`` to :data:`STATS_WORK_MEM` for the current transaction only."""

_SQLITE_WHOLE_SECONDS: Final = 19  # "YYYY-MM-DD HH:MM:SS", then ".ffffff" (SQLAlchemy's format)


# ------------------------------------------------------------------------------ audit


class AuditStatements:
    """The two statements of the audit trail: append one entry, read one recording's trail.

    There is no ``UPDATE`` or ``DELETE`` of the audit table anywhere in the package.
    """

    def __init__(self, table: sa.Table) -> None:
        self.table = table
        self.insert = table.insert()
        self.trail = (
            sa.select(
                table.c.id,
                table.c.recording_id,
                table.c.action,
                table.c.actor_user_id,
                table.c.at,
                table.c.attributes,
            )
            .where(table.c.recording_id == sa.bindparam("recording_id"))
            .order_by(table.c.at, table.c.seq)
        )

    def append(self, connection: sa.Connection, entry: AuditEntry | None) -> None:
        """Insert ``entry`` (when there is one) in ``connection``'s transaction."""
        if entry is not None:
            connection.execute(self.insert, to_audit_row(entry))


# ------------------------------------------------------------------------------ statistics


class StatsStatements:
    """The statistics statement for each dialect and window shape, built on first use."""

    def __init__(self, table: sa.Table) -> None:
        self.table = table
        self._built: dict[tuple[bool, bool, bool], sa.Select[Any]] = {}

    def statement(self, *, postgres: bool, since: bool, until: bool) -> sa.Select[Any]:
        """Return the one-row aggregate over the window ``[:since, :until)`` (bounds as given)."""
        key = (postgres, since, until)
        built = self._built.get(key)
        if built is None:
            built = self._built[key] = (
                self._postgres(since=since, until=until)
                if postgres
                else self._ranked(since=since, until=until)
            )
        return built

    def _window(self, *, since: bool, until: bool) -> list[sa.ColumnElement[bool]]:
        created_at = self.table.c.created_at
        conditions: list[sa.ColumnElement[bool]] = []
        if since:
            conditions.append(created_at >= sa.bindparam("since", type_=created_at.type))
        if until:
            conditions.append(created_at < sa.bindparam("until", type_=created_at.type))
        return conditions

    def _live_uploads(self, *, since: bool, until: bool) -> list[sa.Label[Any]]:
        """Count the window's live ``uploading`` recordings (all, and those never verified).

        Scalar subqueries over the sweep's partial index (its predicate word
        for word, so both planners use it), apart from the window's scan.
        """
        live = self.table.alias("live")
        created_at = live.c.created_at
        window: list[sa.ColumnElement[bool]] = []
        if since:
            window.append(created_at >= sa.bindparam("since", type_=created_at.type))
        if until:
            window.append(created_at < sa.bindparam("until", type_=created_at.type))

        def count(name: str, *conditions: sa.ColumnElement[bool]) -> sa.Label[Any]:
            counted = sa.select(sa.func.count()).select_from(live)
            counted = counted.where(sa.text(STALE_UPLOAD_PREDICATE), *window, *conditions)
            return counted.scalar_subquery().label(name)

        return [
            count("live_uploading"),
            count("live_uploading_unverified", live.c.verified_at.is_(None)),
        ]

    def _quantities(self, *, postgres: bool) -> dict[str, sa.ColumnElement[Any]]:
        """Each distribution's value, NULL on the rows it does not cover (see stats.py)."""
        c = self.table.c
        verified = c.verified_at.is_not(None)
        if postgres:  # date_part is double precision (EXTRACT is numeric, and slower)
            elapsed: sa.ColumnElement[Any] = sa.func.date_part(
                "epoch", c.processing_completed_at - c.processing_started_at
            )
        else:
            elapsed = _sqlite_elapsed(c.processing_started_at, c.processing_completed_at)
        transcribed = c.status == RecordingStatus.TRANSCRIBED.value
        return {
            "file_size_bytes": sa.case((verified, c.file_size_bytes)),
            "duration_seconds": sa.case((verified, c.duration_seconds)),
            "audio_duration_seconds": sa.case((verified, c.audio_duration_seconds)),
            "processing_seconds": sa.case((transcribed, elapsed)),
        }

    @staticmethod
    def _counts(
        status: sa.ColumnElement[Any], verified_at: sa.ColumnElement[Any]
    ) -> list[sa.Label[Any]]:
        """Return the counts by status and those behind the upload success rate."""
        unverified = verified_at.is_(None)

        def count(condition: sa.ColumnElement[bool], name: str) -> sa.Label[Any]:
            return sa.func.count(sa.case((condition, 1))).label(name)

        columns = [count(status == s.value, f"status_{s.value}") for s in RecordingStatus]
        columns += [
            sa.func.count().label("initiated"),
            count(verified_at.is_not(None), "verified"),
            count(
                sa.and_(status == RecordingStatus.FAILED.value, unverified),
                "failed_without_audio",
            ),
            count(sa.and_(status == RecordingStatus.UPLOADING.value, unverified), "uploading"),
        ]
        return columns

    def _postgres(self, *, since: bool, until: bool) -> sa.Select[Any]:
        """One pass: the counts, and per quantity its count, sum and one ``percentile_cont``.

        The percentile aggregate takes the fractions 0, :data:`PERCENTILES` and
        1 over one sort, so it returns ``[min, p50, p90, p99, max]``. Each
        row's quantities are computed once, in a subquery the planner may not
        flatten (``OFFSET 0``), rather than once per aggregate using them.
        """
        c = self.table.c
        values = (
            sa.select(
                c.status,
                c.verified_at,
                *(
                    sa.cast(raw, sa.Float()).label(name)
                    for name, raw in self._quantities(postgres=True).items()
                ),
            )
            .where(*self._window(since=since, until=until))
            .offset(0)
            .subquery("window")
        )
        columns = self._counts(values.c.status, values.c.verified_at)
        columns += self._live_uploads(since=since, until=until)
        # The extremes ride on the percentiles' sort: min is the fraction 0, max the fraction 1.
        fractions = sa.literal([0.0, *PERCENTILES, 1.0], postgresql.ARRAY(sa.Float()))
        for name in _DISTRIBUTIONS:
            value = values.c[name]
            columns += [
                sa.func.count(value).label(f"{name}_count"),
                sa.func.sum(value).label(f"{name}_sum"),
                sa.func.percentile_cont(fractions).within_group(value).label(f"{name}_percentiles"),
            ]
        return sa.select(*columns).select_from(values)

    def _ranked(self, *, since: bool, until: bool) -> sa.Select[Any]:
        """Without a percentile function: rank each quantity, then pick the ranks in SQL.

        The percentile ``p`` of ``n`` ordered values sits at position
        ``p * (n - 1)``: between the values ranked ``floor`` and ``floor + 1``,
        interpolated by the fraction (as ``percentile_cont``).
        """
        c = self.table.c
        quantities = self._quantities(postgres=False)
        values = (
            sa.select(
                c.status,
                c.verified_at,
                *(sa.cast(raw, sa.Float()).label(name) for name, raw in quantities.items()),
            )
            .where(*self._window(since=since, until=until))
            .subquery("window")
        )
        ranked_columns: list[sa.ColumnElement[Any]] = [values.c.status, values.c.verified_at]
        for name in quantities:
            value = values.c[name]
            ranked_columns += [
                value,
                (sa.func.row_number().over(partition_by=value.is_(None), order_by=value) - 1).label(
                    f"{name}_rank"
                ),
                sa.func.count(value).over().label(f"{name}_n"),
            ]
        ranked = sa.select(*ranked_columns).subquery("ranked")
        columns = self._counts(ranked.c.status, ranked.c.verified_at)
        columns += self._live_uploads(since=since, until=until)
        for name in quantities:
            value, rank, n = ranked.c[name], ranked.c[f"{name}_rank"], ranked.c[f"{name}_n"]
            columns += [
                sa.func.count(value).label(f"{name}_count"),
                sa.func.min(value).label(f"{name}_min"),
                sa.func.max(value).label(f"{name}_max"),
                sa.func.avg(value).label(f"{name}_mean"),
            ]
            for fraction in PERCENTILES:
                position = sa.literal(fraction, sa.Float()) * (n - 1)
                low = sa.cast(position, sa.Integer())  # floor: the position is never negative
                # NULLs rank too (in their own partition) but pick NULL, which max() skips.
                at_low = sa.func.max(sa.case((rank == low, value)))
                at_high = sa.func.max(sa.case((rank == low + 1, value)))
                weight = sa.func.max(position - low)  # the same on every row
                interpolated = at_low + weight * (sa.func.coalesce(at_high, at_low) - at_low)
                columns.append(interpolated.label(f"{name}_p{round(fraction * 100)}"))
        return sa.select(*columns).select_from(ranked)


def _sqlite_elapsed(
    start: sa.ColumnElement[Any], end: sa.ColumnElement[Any]
) -> sa.ColumnElement[Any]:
    """Seconds from ``start`` to ``end`` (stored SQLite times), to the microsecond.

    SQLite's date functions keep milliseconds only, so the whole seconds go
    through ``strftime('%s')`` and the fractions are read from the text; the
    two differences are added last, so no epoch-sized float loses digits.
    """

    def whole(column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
        seconds = sa.func.strftime("%s", sa.func.substr(column, 1, _SQLITE_WHOLE_SECONDS))
        return sa.cast(seconds, sa.Integer())

    def fraction(column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
        return sa.cast(sa.func.substr(column, _SQLITE_WHOLE_SECONDS + 1), sa.Float())

    return (whole(end) - whole(start)) + (fraction(end) - fraction(start))


def window_params(since: dt.datetime | None, until: dt.datetime | None) -> dict[str, Any]:
    """Return the bound parameters of a statistics window (UTC, as stored)."""
    params: dict[str, Any] = {}
    if since is not None:
        params["since"] = to_db_time(since)
    if until is not None:
        params["until"] = to_db_time(until)
    return params


def to_repository_stats(row: Mapping[Any, Any]) -> RepositoryStats:
    """Return the statistics of one aggregate row (either dialect's shape)."""
    distributions: dict[str, Distribution] = {}
    for name in _DISTRIBUTIONS:
        count = int(row[f"{name}_count"])
        if count == 0:
            distributions[name] = Distribution()
            continue
        if f"{name}_percentiles" in row:  # PostgreSQL: [min, p50, p90, p99, max] and the sum
            low, p50, p90, p99, high = (float(value) for value in row[f"{name}_percentiles"])
            mean = float(row[f"{name}_sum"]) / count
        else:
            low, high = float(row[f"{name}_min"]), float(row[f"{name}_max"])
            p50, p90, p99 = (float(row[f"{name}_p{round(f * 100)}"]) for f in PERCENTILES)
            mean = float(row[f"{name}_mean"])
        distributions[name] = Distribution(
            count=count, min=low, p50=p50, p90=p90, p99=p99, max=high, mean=mean
        )
    by_status = {status: int(row[f"status_{status.value}"]) for status in RecordingStatus}
    # Uploads deleted before they arrived (every uploading row but the live ones) count as failed.
    abandoned = by_status[RecordingStatus.UPLOADING] - int(row["live_uploading"])
    by_status[RecordingStatus.UPLOADING] -= abandoned
    by_status[RecordingStatus.FAILED] += abandoned
    uploading = int(row["live_uploading_unverified"])
    abandoned_unverified = int(row["uploading"]) - uploading
    return RepositoryStats(
        by_status=by_status,
        uploads=UploadCounts(
            initiated=int(row["initiated"]),
            verified=int(row["verified"]),
            failed_without_audio=int(row["failed_without_audio"]) + abandoned_unverified,
            uploading=uploading,
        ),
        file_size_bytes=distributions["file_size_bytes"],
        duration_seconds=distributions["duration_seconds"],
        audio_duration_seconds=distributions["audio_duration_seconds"],
        processing_seconds=distributions["processing_seconds"],
    )
