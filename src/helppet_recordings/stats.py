"""Statistics over the recordings: counts by status, upload success, sizes, durations, times.

The repository computes them (``RecordingRepository.stats``), in the database
for ``SqlAlchemyRepository``: counts and percentiles are aggregates there, no
row is sent to Python. It answers a :class:`RepositoryStats`; the service turns
it into the wire model :class:`RecordingStats`.

What is counted, precisely:

- **the window**: recordings whose ``created_at`` is at or after ``since``
  and before ``until`` (either may be open). Soft-deleted and purged
  recordings count too: deleting a recording does not undo its upload.
- **abandoned uploads**: a recording deleted while still ``uploading`` can
  never be completed (nor is it swept: it stays ``uploading`` when stored),
  so its upload has settled without audio: it counts as ``failed``, as the
  sweeper would have failed it (:func:`counted_status`).
- **by_status**: how many recordings of the window are in each status
  (every status present, 0 where there are none).
- **upload_success_rate**: ``verified / (verified + failed_without_audio)``,
  where ``verified`` counts recordings whose upload storage confirmed
  (``verified_at`` set, whatever happened after: a failed transcription is
  still a successful upload) and ``failed_without_audio`` counts ``failed``
  recordings whose upload never verified (expired, rejected, or abandoned:
  deleted before it arrived). Recordings still ``uploading`` (live ones
  only) are left out: their upload has not settled. None when no upload of
  the window has settled.
- **file_size_bytes**, **duration_seconds** (the client's declaration) and
  **audio_duration_seconds** (measured by decoding): over verified uploads
  that have the value.
- **processing_seconds**: ``processing_completed_at - processing_started_at``
  of ``transcribed`` recordings (the attempt that produced the transcript).

Percentiles are continuous (linear interpolation between the two nearest
ranks, as PostgreSQL's ``percentile_cont`` and numpy's default compute them).
On SQLite, which ranks every quantity with window functions, a window of
200,000 recordings takes seconds (PostgreSQL: a fraction of one); see
``docs/operations.md``.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping
from typing import Annotated, Final

import attrs
from pydantic import BaseModel, ConfigDict, Field

from helppet_recordings.status import RecordingStatus

__all__ = [
    "PERCENTILES",
    "Distribution",
    "DistributionStats",
    "RecordingStats",
    "RepositoryStats",
    "UploadCounts",
    "UploadStats",
    "counted_status",
    "percentile_cont",
    "summarize",
]

PERCENTILES: Final = (0.5, 0.9, 0.99)
"""The percentiles every distribution reports: p50, p90, p99."""


def counted_status(status: RecordingStatus, *, is_deleted: bool) -> RecordingStatus:
    """Return the status a recording counts under in the statistics.

    Its stored ``status``, except for an upload deleted before it arrived
    (deleted while ``uploading``): abandoned, it counts as ``failed``.
    """
    if is_deleted and status is RecordingStatus.UPLOADING:
        return RecordingStatus.FAILED
    return status


def percentile_cont(ordered: list[float], fraction: float) -> float:
    """Return the continuous percentile ``fraction`` (0..1) of ``ordered`` (sorted, non-empty).

    The value at position ``fraction * (n - 1)`` of the sorted values,
    interpolated linearly between its two neighbours.
    """
    if not ordered:
        msg = "a percentile of no values is undefined"
        raise ValueError(msg)
    position = fraction * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    weight = position - low
    return ordered[low] + weight * (ordered[high] - ordered[low])


@attrs.frozen(kw_only=True)
class Distribution:
    """How a quantity is spread: count, extremes, mean and the :data:`PERCENTILES`.

    Every figure but ``count`` is None when there are no values.
    """

    count: int = 0
    min: float | None = None
    p50: float | None = None
    p90: float | None = None
    p99: float | None = None
    max: float | None = None
    mean: float | None = None


def summarize(values: Iterable[float]) -> Distribution:
    """Return the :class:`Distribution` of ``values`` (computed in Python: the in-memory twin)."""
    ordered = sorted(float(value) for value in values)
    if not ordered:
        return Distribution()
    p50, p90, p99 = (percentile_cont(ordered, fraction) for fraction in PERCENTILES)
    return Distribution(
        count=len(ordered),
        min=ordered[0],
        p50=p50,
        p90=p90,
        p99=p99,
        max=ordered[-1],
        mean=math.fsum(ordered) / len(ordered),
    )


@attrs.frozen(kw_only=True)
class UploadCounts:
    """The counts behind the upload success rate (see the module docstring)."""

    initiated: int = 0
    """Every recording of the window."""
    verified: int = 0
    """Storage confirmed the upload (``verified_at`` set)."""
    failed_without_audio: int = 0
    """``failed`` without a verified upload: expired, rejected, or deleted before it arrived."""
    uploading: int = 0
    """Live recordings still waiting for the upload (not settled, left out of the rate)."""

    @property
    def success_rate(self) -> float | None:
        """``verified / (verified + failed_without_audio)``, None when nothing has settled."""
        settled = self.verified + self.failed_without_audio
        return None if settled == 0 else self.verified / settled


@attrs.frozen(kw_only=True)
class RepositoryStats:
    """What a repository reports for :meth:`RecordingRepository.stats`."""

    by_status: Mapping[RecordingStatus, int]
    uploads: UploadCounts
    file_size_bytes: Distribution
    duration_seconds: Distribution
    audio_duration_seconds: Distribution
    processing_seconds: Distribution


# ----------------------------------------------------------------------------- the wire


class DistributionStats(BaseModel):
    """A distribution on the wire: count, min, p50, p90, p99, max, mean (null without values)."""

    model_config = ConfigDict(frozen=True)

    count: int = Field(ge=0)
    min: float | None
    p50: float | None
    p90: float | None
    p99: float | None
    max: float | None
    mean: float | None

    @classmethod
    def from_distribution(cls, distribution: Distribution) -> DistributionStats:
        """Build the wire form of a domain distribution."""
        return cls.model_validate(distribution, from_attributes=True)


class UploadStats(BaseModel):
    """The counts behind ``upload_success_rate``."""

    model_config = ConfigDict(frozen=True)

    initiated: int = Field(ge=0)
    verified: int = Field(ge=0)
    failed_without_audio: int = Field(ge=0)
    uploading: int = Field(ge=0)


class RecordingStats(BaseModel):
    """Statistics of the recordings created in ``[since, until)`` (either end may be open).

    See :mod:`helppet_recordings.stats` for exactly what each figure counts.
    """

    model_config = ConfigDict(frozen=True)

    since: dt.datetime | None
    until: dt.datetime | None
    total: int = Field(ge=0)
    by_status: dict[RecordingStatus, int]
    upload_success_rate: Annotated[float, Field(ge=0, le=1)] | None
    uploads: UploadStats
    file_size_bytes: DistributionStats
    duration_seconds: DistributionStats
    """As the clients declared it at completion."""
    audio_duration_seconds: DistributionStats
    """As measured by decoding the stored file."""
    processing_seconds: DistributionStats

    @classmethod
    def from_repository(
        cls, stats: RepositoryStats, *, since: dt.datetime | None, until: dt.datetime | None
    ) -> RecordingStats:
        """Build the wire model from what the repository computed."""
        by_status = {status: int(stats.by_status.get(status, 0)) for status in RecordingStatus}
        return cls(
            since=since,
            until=until,
            total=sum(by_status.values()),
            by_status=by_status,
            upload_success_rate=stats.uploads.success_rate,
            uploads=UploadStats.model_validate(stats.uploads, from_attributes=True),
            file_size_bytes=DistributionStats.from_distribution(stats.file_size_bytes),
            duration_seconds=DistributionStats.from_distribution(stats.duration_seconds),
            audio_duration_seconds=DistributionStats.from_distribution(
                stats.audio_duration_seconds
            ),
            processing_seconds=DistributionStats.from_distribution(stats.processing_seconds),
        )
