"""Prometheus text at ``/metrics``: the service's metrics on an OpenTelemetry SDK meter provider.

Needs the ``prometheus`` extra (``opentelemetry-sdk`` and
``opentelemetry-exporter-prometheus``). Each app gets its own meter provider
whose Prometheus reader registers on its own ``CollectorRegistry``, never on
``prometheus_client``'s global one: any number of apps (tests build many) can
live in one process, and each ``/metrics`` shows its own service's numbers.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import attrs

from helppet_recordings.metrics import RecordingMetrics

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics import MeterProvider
    from prometheus_client import CollectorRegistry

__all__ = ["PrometheusMetrics", "prometheus_metrics"]

_log = logging.getLogger(__name__)


@attrs.frozen
class PrometheusMetrics:
    """A :class:`RecordingMetrics` for the service and the registry ``/metrics`` serves."""

    recording: RecordingMetrics
    registry: CollectorRegistry
    provider: MeterProvider

    def exposition(self) -> tuple[bytes, str]:
        """Return the current metrics as Prometheus text, and its content type."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest  # noqa: PLC0415

        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def shutdown(self) -> None:
        """Stop the meter provider (its reader leaves the registry)."""
        self.provider.shutdown()


def prometheus_metrics() -> PrometheusMetrics | None:
    """Return a meter provider with a Prometheus reader, or None without the extra (logged)."""
    try:
        from opentelemetry.exporter.prometheus import PrometheusMetricReader  # noqa: PLC0415
        from opentelemetry.sdk.metrics import MeterProvider  # noqa: PLC0415
        from prometheus_client import CollectorRegistry  # noqa: PLC0415
    except ImportError:
        _log.warning(
            "/metrics is off: install helppet-recordings[prometheus] to serve Prometheus text"
        )
        return None
    registry = CollectorRegistry()
    provider = MeterProvider(metric_readers=[PrometheusMetricReader(registry=registry)])
    return PrometheusMetrics(RecordingMetrics(provider), registry, provider)
