"""What happened to a recording: events published after each stored change.

``RecordingService(..., on_event=listener)`` calls ``listener(event)`` with one
:class:`RecordingEvent` after every change it has stored. The names:

============================  =====================================================
``recording.initiated``       a new ``uploading`` recording was created
``upload.completed``          its upload was verified: ``uploading`` -> ``uploaded``
``upload.rejected``           completion refused the stored object (the recording
                              stays ``uploading`` unless its deadline passed)
``upload.expired``            the upload deadline passed: ``uploading`` -> ``failed``
``processing.started``        ``uploaded`` -> ``processing``
``transcript.recorded``       ``processing`` -> ``transcribed``
``recording.failed``          any other move to ``failed``
``processing.deferred``       a transient error: ``processing`` -> ``uploaded`` until
                              the next attempt
``audio.inspected``           the stored file was decoded and measured
``recording.reprocessed``     ``failed`` -> ``uploaded`` for another attempt
``recording.deleted``         soft-deleted by its owner
``recording.purged``          its audio removed and its personal fields scrubbed
``download_url.issued``       a signed download URL was handed to its owner
============================  =====================================================

``upload.rejected`` is the one event that reports a refusal: nothing about the
recording changed unless the deadline had passed (then ``upload.expired``
follows). Attributes carry codes, sizes, types and durations, never personal
content (no original filename, transcript or metadata value).

A listener that raises never breaks or undoes the operation: the error is
logged under ``helppet_recordings.events`` and the next listener call proceeds.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Callable, Mapping
from typing import Final

import attrs

__all__ = [
    "EVENT_NAMES",
    "AttributeValue",
    "EventListener",
    "EventPublisher",
    "RecordingEvent",
]

AttributeValue = str | int | float | bool | None
"""What an event attribute may hold: codes, counts, sizes, flags; never free text."""

RECORDING_INITIATED: Final = "recording.initiated"
UPLOAD_COMPLETED: Final = "upload.completed"
UPLOAD_REJECTED: Final = "upload.rejected"
UPLOAD_EXPIRED: Final = "upload.expired"
PROCESSING_STARTED: Final = "processing.started"
TRANSCRIPT_RECORDED: Final = "transcript.recorded"
RECORDING_FAILED: Final = "recording.failed"
RECORDING_DELETED: Final = "recording.deleted"
RECORDING_PURGED: Final = "recording.purged"
DOWNLOAD_URL_ISSUED: Final = "download_url.issued"
PROCESSING_DEFERRED: Final = "processing.deferred"
AUDIO_INSPECTED: Final = "audio.inspected"
RECORDING_REPROCESSED: Final = "recording.reprocessed"

EVENT_NAMES: Final = frozenset(
    {
        RECORDING_INITIATED,
        UPLOAD_COMPLETED,
        UPLOAD_REJECTED,
        UPLOAD_EXPIRED,
        PROCESSING_STARTED,
        TRANSCRIPT_RECORDED,
        RECORDING_FAILED,
        RECORDING_DELETED,
        RECORDING_PURGED,
        DOWNLOAD_URL_ISSUED,
        PROCESSING_DEFERRED,
        AUDIO_INSPECTED,
        RECORDING_REPROCESSED,
    }
)
"""Every event name the package publishes."""

_logger = logging.getLogger("helppet_recordings.events")


@attrs.frozen(kw_only=True)
class RecordingEvent:
    """One stored change to a recording.

    ``user_id`` is the caller for user operations and None for system ones
    (workers, the sweeper, purges). ``at`` is the service clock's time of the
    change.
    """

    name: str = attrs.field(validator=attrs.validators.in_(EVENT_NAMES))
    recording_id: uuid.UUID
    user_id: uuid.UUID | None
    at: dt.datetime
    attributes: Mapping[str, AttributeValue] = attrs.field(factory=dict)


EventListener = Callable[[RecordingEvent], object]
"""Receives each event; its return value is ignored and its exceptions are logged."""


class EventPublisher:
    """Hands events to the listeners (metrics, the host's) and logs each one at DEBUG."""

    def __init__(self, *listeners: EventListener | None) -> None:
        self._listeners = tuple(listener for listener in listeners if listener is not None)

    @property
    def wanted(self) -> bool:
        """Whether anyone receives events: a listener, or the event log at DEBUG."""
        return bool(self._listeners) or _logger.isEnabledFor(logging.DEBUG)

    def publish(self, event: RecordingEvent) -> None:
        """Log ``event`` at DEBUG and call the listener; a listener's error is logged only."""
        if _logger.isEnabledFor(logging.DEBUG):
            _logger.debug(
                "%s recording=%s attributes=%s",
                event.name,
                event.recording_id,
                dict(event.attributes),
            )
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:
                _logger.exception(
                    "Event listener failed on %s for recording %s; the operation stands",
                    event.name,
                    event.recording_id,
                )
