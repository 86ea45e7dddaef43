"""Metrics through the OpenTelemetry API: a no-op until the host configures a provider.

:class:`RecordingMetrics` turns the service's events (and the reports of its
jobs) into OpenTelemetry instruments. ``RecordingService`` creates one on the
global meter provider unless given ``metrics=``; configure a provider (the
example app uses a Prometheus reader) and the numbers appear. Labels carry
codes and types only, never an id, a key, a filename or any text a client sent.

=============================================  ===========  =================================
instrument                                     unit         attributes
=============================================  ===========  =================================
``helppet_recordings.uploads.initiated``       {upload}     ``mime_type``
``helppet_recordings.uploads.completed``       {upload}     ``by`` (client, sweeper)
``helppet_recordings.uploads.rejected``        {upload}     ``error_code``
``helppet_recordings.uploads.expired``         {upload}
``helppet_recordings.uploads.bytes``           By
``helppet_recordings.uploads.duration``        s            initiate to verified completion
``helppet_recordings.processing.started``      {recording}  ``resumed``
``helppet_recordings.processing.deferred``     {recording}
``helppet_recordings.processing.duration``     s            ``outcome`` (transcribed, failed)
``helppet_recordings.transcription.duration``  s            ``service``, ``outcome``
``helppet_recordings.recordings.failed``       {recording}  ``previous_status``
``helppet_recordings.recordings.deleted``      {recording}
``helppet_recordings.recordings.purged``       {recording}
``helppet_recordings.downloads.issued``        {url}
``helppet_recordings.reconcile.findings``      {object}     ``kind`` (see :meth:`reconciled`)
=============================================  ===========  =================================
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final

from opentelemetry import metrics

from helppet_recordings import events
from helppet_recordings.events import RecordingEvent

__all__ = ["METER_NAME", "RecordingMetrics"]

METER_NAME: Final = "helppet_recordings"
_PREFIX: Final = "helppet_recordings."


class RecordingMetrics:
    """The package's instruments, fed by events (``__call__``) and by the jobs' reports."""

    def __init__(self, meter_provider: metrics.MeterProvider | None = None) -> None:
        meter = metrics.get_meter(METER_NAME, meter_provider=meter_provider)

        def counter(name: str, unit: str, description: str) -> metrics.Counter:
            return meter.create_counter(_PREFIX + name, unit=unit, description=description)

        def histogram(name: str, description: str) -> metrics.Histogram:
            return meter.create_histogram(_PREFIX + name, unit="s", description=description)

        self._initiated = counter("uploads.initiated", "{upload}", "Uploads initiated")
        self._completed = counter("uploads.completed", "{upload}", "Uploads verified")
        self._rejected = counter("uploads.rejected", "{upload}", "Completions refused")
        self._expired = counter("uploads.expired", "{upload}", "Uploads past their deadline")
        self._bytes = counter("uploads.bytes", "By", "Bytes of verified uploads")
        self._upload_duration = histogram("uploads.duration", "Initiate to verified completion")
        self._started = counter("processing.started", "{recording}", "Processing attempts")
        self._deferred = counter("processing.deferred", "{recording}", "Attempts deferred")
        self._processing_duration = histogram("processing.duration", "Start to outcome")
        self._transcription_duration = histogram("transcription.duration", "Transcriber time")
        self._failed = counter("recordings.failed", "{recording}", "Recordings failed")
        self._deleted = counter("recordings.deleted", "{recording}", "Recordings deleted")
        self._purged = counter("recordings.purged", "{recording}", "Recordings purged")
        self._downloads = counter("downloads.issued", "{url}", "Download URLs issued")
        self._findings = counter("reconcile.findings", "{object}", "What reconcile found")
        self._handlers: Mapping[str, Callable[[RecordingEvent], None]] = {
            events.RECORDING_INITIATED: self._on_initiated,
            events.UPLOAD_COMPLETED: self._on_completed,
            events.UPLOAD_REJECTED: self._on_rejected,
            events.UPLOAD_EXPIRED: lambda _: self._expired.add(1),
            events.PROCESSING_STARTED: self._on_started,
            events.PROCESSING_DEFERRED: lambda _: self._deferred.add(1),
            events.TRANSCRIPT_RECORDED: self._on_transcribed,
            events.RECORDING_FAILED: self._on_failed,
            events.RECORDING_DELETED: lambda _: self._deleted.add(1),
            events.RECORDING_PURGED: lambda _: self._purged.add(1),
            events.DOWNLOAD_URL_ISSUED: lambda _: self._downloads.add(1),
        }

    def __call__(self, event: RecordingEvent) -> None:
        """Record what ``event`` reports."""
        handler = self._handlers.get(event.name)
        if handler is not None:
            handler(event)

    def transcription_finished(self, seconds: float, *, service: str, outcome: str) -> None:
        """Record how long a transcriber took.

        ``outcome``: ``transcribed``, or what the worker made of its error
        (``deferred``, ``failed``, ``dropped``). The worker calls it for every
        call to its transcriber.
        """
        self._transcription_duration.record(seconds, {"service": service, "outcome": outcome})

    def reconciled(self, *, orphans: int, missing: int, deleted: int, changed: int = 0) -> None:
        """Record what a reconcile pass found and deleted.

        Counted by ``kind``: ``orphan``, ``missing`` (lost audio), ``changed``
        (audio replaced after verification) and ``deleted``.
        """
        counts = (("orphan", orphans), ("missing", missing), ("changed", changed))
        for kind, count in (*counts, ("deleted", deleted)):
            if count:
                self._findings.add(count, {"kind": kind})

    def _on_initiated(self, event: RecordingEvent) -> None:
        self._initiated.add(1, _labels(event, "mime_type"))

    def _on_completed(self, event: RecordingEvent) -> None:
        self._completed.add(1, _labels(event, "by"))
        size = event.attributes.get("size_bytes")
        if isinstance(size, int):
            self._bytes.add(size)
        seconds = event.attributes.get("upload_seconds")
        if isinstance(seconds, int | float):
            self._upload_duration.record(seconds)

    def _on_rejected(self, event: RecordingEvent) -> None:
        self._rejected.add(1, _labels(event, "error_code"))

    def _on_started(self, event: RecordingEvent) -> None:
        self._started.add(1, {"resumed": bool(event.attributes.get("resumed", False))})

    def _on_transcribed(self, event: RecordingEvent) -> None:
        self._processing_seconds(event, "transcribed")

    def _on_failed(self, event: RecordingEvent) -> None:
        self._failed.add(1, _labels(event, "previous_status"))
        self._processing_seconds(event, "failed")

    def _processing_seconds(self, event: RecordingEvent, outcome: str) -> None:
        seconds = event.attributes.get("processing_seconds")
        if isinstance(seconds, int | float):
            self._processing_duration.record(seconds, {"outcome": outcome})


def _labels(event: RecordingEvent, *names: str) -> dict[str, str | bool | int | float]:
    """Return the named attributes that are set, as metric labels (codes and types only)."""
    labels: dict[str, str | bool | int | float] = {}
    for name in names:
        value = event.attributes.get(name)
        if value is not None:
            labels[name] = value
    return labels
