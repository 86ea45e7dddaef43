"""Metrics: every instrument over a full life cycle, on a real OpenTelemetry SDK reader."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from helppet_recordings import (
    InMemoryRepository,
    InMemoryStorage,
    RecordingService,
    RecordingSettings,
    UploadNotFoundError,
)
from helppet_recordings.metrics import RecordingMetrics
from helppet_recordings.testing.clock import FakeClock
from tests.support.uploads import upload_key

USER = uuid.UUID("5f0c6c1e-0a7e-4b8e-9d5e-0c2b7b7f1a01")
BODY = b"\x00\x00\x00\x18ftypM4A " + b"a" * 1000
FILENAME = "Bello Smith visit.m4a"


def _points(reader: InMemoryMetricReader) -> dict[str, list[tuple[dict[str, Any], float]]]:
    """Every data point by instrument name: (labels, value or histogram sum)."""
    found: dict[str, list[tuple[dict[str, Any], float]]] = {}
    data = reader.get_metrics_data()
    assert data is not None
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    value = getattr(point, "value", None)
                    total = value if value is not None else point.sum  # type: ignore[union-attr]
                    found.setdefault(metric.name, []).append((dict(point.attributes or {}), total))
    return found


def test_reconcile_counts_replaced_audio() -> None:
    """A recording whose verified object was overwritten is a ``changed`` finding."""
    reader = InMemoryMetricReader()
    storage = InMemoryStorage()
    service = RecordingService(
        storage,
        InMemoryRepository(),
        RecordingSettings(),
        metrics=RecordingMetrics(MeterProvider(metric_readers=[reader])),
    )
    ticket = service.initiate_upload(USER, {"filename": FILENAME, "content_type": "audio/mp4"})
    storage.put_object(upload_key(ticket), BODY, content_type="audio/mp4")
    service.complete_upload(USER, ticket.recording_id, {"file_size_bytes": len(BODY)})
    storage.put_object(ticket.s3_key, BODY + b"x", content_type="audio/mp4")
    service.reconcile()
    findings = _points(reader)["helppet_recordings.reconcile.findings"]
    assert findings == [({"kind": "changed"}, 1)]


def test_a_life_cycle_records_every_instrument() -> None:
    """Initiate to purge, a refusal, a sweep and reconcile: each instrument counts what happened."""
    reader = InMemoryMetricReader()
    clock = FakeClock()
    storage = InMemoryStorage()
    service = RecordingService(
        storage,
        InMemoryRepository(),
        RecordingSettings(max_file_size=1_000_000, s3_presigned_url_expiration=600),
        clock=clock,
        metrics=RecordingMetrics(MeterProvider(metric_readers=[reader])),
    )
    request = {"filename": FILENAME, "content_type": "audio/mp4"}
    ticket = service.initiate_upload(USER, request)
    with pytest.raises(UploadNotFoundError):
        service.complete_upload(USER, ticket.recording_id, {"file_size_bytes": len(BODY)})
    storage.put_object(upload_key(ticket), BODY, content_type="audio/mp4")
    clock.advance(seconds=42)
    service.complete_upload(USER, ticket.recording_id, {"file_size_bytes": len(BODY)})
    service.get_download_url(USER, ticket.recording_id)
    [claimed] = service.claim_for_processing()
    service.begin_processing(claimed)
    clock.advance(seconds=7)
    service.record_transcript(ticket.recording_id, text="ok", claim=claimed.lease_expires_at)
    service.metrics.transcription_finished(6.5, service="local-pocketsphinx", outcome="transcribed")
    service.delete_recording(USER, ticket.recording_id)
    service.initiate_upload(USER, request)  # left to expire
    service.mark_failed(service.initiate_upload(USER, request).recording_id, error="gave up")
    clock.advance(days=60)
    assert service.expire_stale_uploads() == 1
    assert service.purge_deleted() == 1
    storage.put_object("recordings/stray.m4a", b"x", content_type="audio/mp4")
    service.reconcile()

    points = _points(reader)

    def total(name: str) -> float:
        return sum(value for _, value in points[f"helppet_recordings.{name}"])

    assert total("uploads.initiated") == 3
    assert points["helppet_recordings.recordings.failed"] == [({"previous_status": "uploading"}, 1)]
    assert points["helppet_recordings.uploads.initiated"][0][0] == {"mime_type": "audio/mp4"}
    assert points["helppet_recordings.uploads.rejected"] == [
        ({"error_code": "UPLOAD_NOT_FOUND"}, 1)
    ]
    assert points["helppet_recordings.uploads.completed"] == [({"by": "client"}, 1)]
    assert total("uploads.bytes") == len(BODY)
    assert total("uploads.duration") == 42
    assert total("uploads.expired") == 1
    assert total("processing.started") == 1
    assert points["helppet_recordings.processing.duration"] == [({"outcome": "transcribed"}, 7)]
    assert total("transcription.duration") == 6.5
    assert total("downloads.issued") == 1
    assert total("recordings.deleted") == 1
    assert total("recordings.purged") == 1
    assert points["helppet_recordings.reconcile.findings"] == [({"kind": "orphan"}, 1)]
    labels = repr(points)
    assert "Bello" not in labels
    assert str(USER) not in labels
    assert ticket.s3_key not in labels
