"""RecordingService.stats: the wire model, its validation, and the percentile arithmetic."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import math
import statistics
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from helppet_recordings import (
    AsyncRecordingService,
    InMemoryRepository,
    InMemoryStorage,
    RecordingService,
    ValidationError,
)
from helppet_recordings.stats import RecordingStats, percentile_cont, summarize
from helppet_recordings.status import RecordingStatus
from helppet_recordings.testing.clock import FakeClock
from helppet_recordings.testing.factories import BASE_TIME, make_recording

HOUR = dt.timedelta(hours=1)


@pytest.fixture
def repository() -> InMemoryRepository:
    """Three recordings an hour apart: failed without audio, uploaded, transcribed."""
    repository = InMemoryRepository()
    started = BASE_TIME + dt.timedelta(days=1)
    for recording in (
        make_recording(created_at=BASE_TIME, status=RecordingStatus.FAILED),
        make_recording(
            created_at=BASE_TIME + HOUR,
            status=RecordingStatus.UPLOADED,
            verified_at=BASE_TIME + HOUR,
            file_size_bytes=1000,
            duration_seconds=12.5,
        ),
        make_recording(
            created_at=BASE_TIME + 2 * HOUR,
            status=RecordingStatus.TRANSCRIBED,
            verified_at=BASE_TIME + 2 * HOUR,
            file_size_bytes=3000,
            audio_duration_seconds=61.0,
            processing_started_at=started,
            processing_completed_at=started + dt.timedelta(seconds=42),
        ),
    ):
        repository.add(recording)
    return repository


@pytest.fixture
def service(repository: InMemoryRepository) -> RecordingService:
    """A service over the three recordings."""
    return RecordingService(InMemoryStorage("b"), repository, clock=FakeClock())


def test_stats_on_the_wire(service: RecordingService) -> None:
    """Every status is present, the rate is verified over settled, and it dumps to JSON."""
    stats = service.stats()
    body = json.loads(stats.model_dump_json())
    assert body["by_status"] == {
        "uploading": 0,
        "uploaded": 1,
        "processing": 0,
        "transcribed": 1,
        "failed": 1,
    }
    assert (body["since"], body["until"], body["total"]) == (None, None, 3)
    assert body["upload_success_rate"] == pytest.approx(2 / 3)
    assert body["uploads"] == {
        "initiated": 3,
        "verified": 2,
        "failed_without_audio": 1,
        "uploading": 0,
    }
    assert body["file_size_bytes"] == {
        "count": 2,
        "min": 1000.0,
        "p50": 2000.0,
        "p90": 2800.0,
        "p99": 2980.0,
        "max": 3000.0,
        "mean": 2000.0,
    }
    assert body["duration_seconds"]["count"] == 1
    assert body["audio_duration_seconds"]["p99"] == 61.0
    assert body["processing_seconds"]["mean"] == 42.0
    assert set(body) == set(RecordingStats.model_fields)


def test_stats_narrow_to_the_window(service: RecordingService) -> None:
    """Only recordings created at or after since and before until count."""
    stats = service.stats(since=BASE_TIME + HOUR, until=BASE_TIME + 2 * HOUR)
    assert stats.total == 1
    assert stats.by_status[RecordingStatus.UPLOADED] == 1
    assert stats.upload_success_rate == 1.0
    assert stats.since == BASE_TIME + HOUR
    empty = service.stats(since=BASE_TIME + 3 * HOUR)
    assert (empty.total, empty.upload_success_rate, empty.file_size_bytes.p50) == (0, None, None)


@pytest.mark.parametrize(
    ("since", "until", "field"),
    [
        (BASE_TIME.replace(tzinfo=None), None, "since"),
        (None, "2026-11-24T10:00:00Z", "until"),
        (BASE_TIME, BASE_TIME, "until"),
        (BASE_TIME + HOUR, BASE_TIME, "until"),
        (dt.datetime(1, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=5))), None, "since"),
        (None, dt.datetime(9999, 12, 31, 23, tzinfo=dt.timezone(-HOUR * 5)), "until"),
    ],
)
def test_stats_refuse_a_bad_window(
    service: RecordingService, since: object, until: object, field: str
) -> None:
    """Naive, non-datetime or beyond-UTC bounds, an empty or reversed window: VALIDATION_ERROR."""
    with pytest.raises(ValidationError) as caught:
        service.stats(since=since, until=until)  # type: ignore[arg-type]
    assert caught.value.error_code == "VALIDATION_ERROR"
    assert caught.value.details["errors"][0]["field"] == field


def test_stats_are_awaitable(service: RecordingService) -> None:
    """The async service answers the same statistics."""

    async def stats() -> RecordingStats:
        return await AsyncRecordingService(service).stats(since=BASE_TIME)

    assert asyncio.run(stats()) == service.stats(since=BASE_TIME)


@given(st.lists(st.floats(-1e9, 1e9, allow_nan=False), min_size=1, max_size=60))
def test_percentiles_interpolate_like_the_statistics_module(values: list[float]) -> None:
    """p50/p90/p99 equal the standard library's inclusive quantiles; extremes and mean hold."""
    distribution = summarize(values)
    ordered = sorted(values)
    if len(values) > 1:
        cuts = statistics.quantiles(values, n=100, method="inclusive")
        expected = [cuts[49], cuts[89], cuts[98]]
    else:
        expected = [values[0]] * 3
    found = [distribution.p50, distribution.p90, distribution.p99]
    assert found == pytest.approx(expected, rel=1e-9, abs=1e-6)
    assert (distribution.min, distribution.max) == (ordered[0], ordered[-1])
    assert distribution.count == len(values)
    assert distribution.mean == pytest.approx(math.fsum(values) / len(values), abs=1e-6)
    assert ordered[0] <= found[0] <= found[1] <= found[2] <= ordered[-1]  # type: ignore[operator]


def test_a_percentile_of_nothing_is_undefined() -> None:
    """Asking for a percentile of no values is a programming error."""
    with pytest.raises(ValueError, match="undefined"):
        percentile_cont([], 0.5)
    assert summarize([]).count == 0


def test_each_recording_counts_once_whatever_its_owner(repository: InMemoryRepository) -> None:
    """Statistics span every user's recordings (it is a system operation)."""
    repository.add(make_recording(recorded_by_user_id=uuid.uuid4(), created_at=BASE_TIME))
    assert repository.stats(since=None, until=None).uploads.initiated == 4
