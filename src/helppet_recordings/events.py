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

Events are delivered at most once: published in process after the change is
stored, never stored themselves. A process that dies after the commit, or a
commit whose outcome is unknown (a connection dropped after an autocommitted
save raises ``DATABASE_UNAVAILABLE``; the retry finds the change made and
publishes nothing), loses the event. What must see every change reads the
database (statuses, the audit trail).

Listeners are called synchronously, in the thread that ran the operation
(with :class:`~helppet_recordings.AsyncRecordingService`, a worker thread), so
a listener does its work before it returns. An ``async def`` listener would
only make a coroutine nobody runs: the service refuses one (``TypeError``
when it is constructed), and an awaitable a listener still returns is closed
unrun and logged as an error naming the listener. An asyncio host hands each
event to its loop itself::

    loop = asyncio.get_running_loop()  # at start-up, on the loop

    def on_event(event: RecordingEvent) -> None:
        asyncio.run_coroutine_threadsafe(handle(event), loop)  # handle: the host's async def
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import inspect
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


EventListener = Callable[[RecordingEvent], None]
"""Receives each event synchronously and returns nothing; its exceptions are logged.

Not a coroutine function: its coroutine would never run (see the module docstring).
"""


class EventPublisher:
    """Hands events to the listeners (metrics, the host's) and logs each one at DEBUG.

    A coroutine function given as a listener raises ``TypeError`` here.
    """

    def __init__(self, *listeners: EventListener | None) -> None:
        self._listeners = tuple(listener for listener in listeners if listener is not None)
        for listener in self._listeners:
            if _is_coroutine_function(listener):
                msg = (
                    f"Event listener {_name_of(listener)} is a coroutine function: listeners "
                    "are called synchronously, so its coroutine would never run. Pass a plain "
                    "function that hands the event to your event loop, e.g. one that calls "
                    "asyncio.run_coroutine_threadsafe(handler(event), loop)"
                )
                raise TypeError(msg)

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
                result: object = listener(event)
            except Exception:
                _logger.exception(
                    "Event listener failed on %s for recording %s; the operation stands",
                    event.name,
                    event.recording_id,
                )
                continue
            # A future or task is scheduled already and runs on its loop: left alone.
            if inspect.isawaitable(result) and not asyncio.isfuture(result):
                _discard(result, listener)


def _is_coroutine_function(listener: object) -> bool:
    """Whether calling ``listener`` makes a coroutine: an ``async def``, or ``async __call__``."""
    call = inspect.getattr_static(type(listener), "__call__", None)  # inherited ones too
    return inspect.iscoroutinefunction(listener) or inspect.iscoroutinefunction(call)


def _discard(awaitable: object, listener: object) -> None:
    """Close an awaitable a listener returned (nothing would run it), and say whose it was."""
    close = getattr(awaitable, "close", None)
    if callable(close):
        close()  # no "never awaited" warning later; the listener's work did not happen
    _logger.error(
        "Event listener %s returned an awaitable, which was dropped without running: "
        "listeners are called synchronously; hand the event to your event loop instead",
        _name_of(listener),
    )


def _name_of(listener: object) -> str:
    """Return the listener's module and qualified name (its class's for a callable object)."""
    target = listener.func if isinstance(listener, functools.partial) else listener
    if not hasattr(target, "__qualname__"):
        target = type(target)
    qualname = str(getattr(target, "__qualname__", "?"))
    module = getattr(target, "__module__", None)
    return f"{module}.{qualname}" if module else qualname
