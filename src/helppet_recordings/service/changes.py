"""The one place a recording changes: load, transition, compare-and-set, publish.

Every use case holds a :class:`ServiceContext` (the ports, the settings, the
clock and the event publisher) and writes through :meth:`ServiceContext.change`
(or :meth:`ServiceContext.create` for a new recording). ``change`` loads the
recording, lets a step apply one of the entity's transition methods, writes the
result with a compare-and-set on the status it was loaded in, retries when a
concurrent writer got there first, and publishes the change's event only after
it was stored.

Each change whose event is named in :data:`AUDITED_EVENTS` becomes an
:class:`~helppet_recordings.audit.AuditEntry`, stored by the repository in the
same transaction as the change (``save(..., audit=entry)``): the trail has an
entry for every audited change, and no entry for a change that was not stored.
A repository without that capability (:mod:`helppet_recordings.audited_writes`)
gets the entry right after the change, from :meth:`ServiceContext.emit`; the
change's event is published whether or not that write succeeds. Reads
that hand out personal content (a download URL, a transcript) are audited by
their use cases *before* they answer, through :meth:`ServiceContext.audit`.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import uuid
from collections.abc import Callable, Mapping
from typing import Final, cast

import attrs

from helppet_recordings import audit, events
from helppet_recordings.audit import AuditEntry, AuditValue
from helppet_recordings.audited_writes import AuditedWrites, stores_audit_atomically
from helppet_recordings.errors import (
    InvalidStatusTransitionError,
    RecordingError,
    RecordingNotFoundError,
)
from helppet_recordings.events import AttributeValue, EventPublisher, RecordingEvent
from helppet_recordings.metrics import RecordingMetrics
from helppet_recordings.models import Recording
from helppet_recordings.ports import RecordingRepository, RecordingStorage
from helppet_recordings.service.inputs import aware
from helppet_recordings.settings import RecordingSettings

__all__ = [
    "AUDITED_EVENTS",
    "AuthorizeContext",
    "Change",
    "Clock",
    "Outcome",
    "ServiceContext",
    "StaleRecording",
    "Step",
    "Write",
]

AuthorizeContext = Callable[[uuid.UUID, uuid.UUID | None, uuid.UUID | None], bool]
"""``authorize_context(user_id, appointment_id, visit_id)``: may this user record here?"""

Clock = Callable[[], dt.datetime]
"""Returns the current time, timezone-aware."""

AUDITED_EVENTS: Final[Mapping[str, str]] = {
    events.RECORDING_DELETED: audit.RECORDING_DELETED,
    events.RECORDING_PURGED: audit.RECORDING_PURGED,
    events.RECORDING_REPROCESSED: audit.RECORDING_REPROCESSED,
}
"""The stored changes that are audited, by event name: the audit action each becomes."""

_logger = logging.getLogger("helppet_recordings.audit")

SAVE_ATTEMPTS: Final = 8  # a save loses only to a concurrent status change; a few retries settle it


@attrs.frozen
class Change:
    """What a step decided: the recording's next state and the event that reports it.

    ``event`` is None for a change no event name covers (a renewed ticket).
    """

    recording: Recording
    event: str | None
    attributes: dict[str, AttributeValue] = attrs.field(factory=dict)


class StaleRecording(Exception):  # noqa: N818 - a signal to change(), never raised to callers
    """Raised by a step that found the recording changed since it was loaded.

    :meth:`ServiceContext.change` then reloads the recording and runs the step
    again, as when its write loses a compare-and-set. For a step about to act
    on what it loaded beyond the write itself (report a rejection, remove an
    object), where the write's compare-and-set comes too late.
    """


@attrs.frozen
class Outcome:
    """What :meth:`ServiceContext.change` left stored, and whether it changed anything."""

    recording: Recording
    changed: bool


Step = Callable[[Recording, dt.datetime], Change | None]
"""Given the loaded recording and the time, return the change to store, or None for none."""

Write = Callable[[Recording, Recording, AuditEntry | None], bool]
"""``write(new, loaded, entry)``: store ``new`` (and ``entry``, atomically, when given) if
the stored recording is still ``loaded``'s state."""


@attrs.define
class ServiceContext:
    """What every use case shares: ports, settings, clock, and the one write path."""

    storage: RecordingStorage
    repository: RecordingRepository
    settings: RecordingSettings
    clock: Clock
    publisher: EventPublisher
    metrics: RecordingMetrics
    authorize_context: AuthorizeContext | None = None
    atomic_audit: bool = attrs.field(init=False)
    """Whether the repository stores an audited change and its entry together."""

    def __attrs_post_init__(self) -> None:
        self.atomic_audit = stores_audit_atomically(self.repository)

    def now(self) -> dt.datetime:
        """Return the service clock's time, checked to be timezone-aware."""
        return aware(self.clock(), "clock()")

    def owned(self, owner: uuid.UUID, rid: uuid.UUID) -> Recording:
        """Load the caller's live recording; anything else is ``RECORDING_NOT_FOUND``."""
        recording = self.repository.get(rid)
        if recording is None or recording.is_deleted or not recording.is_owned_by(owner):
            raise RecordingNotFoundError(recording_id=str(rid))
        return recording

    def live(self, rid: uuid.UUID) -> Recording:
        """Load a live recording whoever owns it (system operations)."""
        recording = self.repository.get(rid)
        if recording is None or recording.is_deleted:
            raise RecordingNotFoundError(recording_id=str(rid))
        return recording

    def at_key(self, key: str) -> Recording | None:
        """Return the recording whose audio lives at ``key`` (deleted ones too), or None."""
        found = self.repository.list_by_key(prefix=key, after=None, limit=1)
        return found[0] if found and found[0].s3_key == key else None

    def create(self, recording: Recording, attributes: Mapping[str, AttributeValue]) -> None:
        """Store a new recording and publish ``recording.initiated``."""
        self.repository.add(recording)
        self.emit(
            events.RECORDING_INITIATED,
            recording,
            recording.recorded_by_user_id,
            attributes=attributes,
        )

    def change(
        self,
        rid: uuid.UUID,
        step: Step,
        *,
        owner: uuid.UUID | None = None,
        loaded: Recording | None = None,
        load: Callable[[uuid.UUID], Recording] | None = None,
        write: Write | None = None,
        at: dt.datetime | None = None,
    ) -> Outcome:
        """Apply ``step`` to the recording and store its change; say what is stored now.

        The recording is loaded as the caller's (``owner``), as any live one,
        or by ``load``; ``loaded`` skips the first load when the caller holds
        it already. ``write`` defaults to a compare-and-set on the loaded
        status; a write that loses to a concurrent change reloads and applies
        the step again, as does a step raising :class:`StaleRecording`. A step
        returning None stores and publishes nothing.
        ``at`` replaces the clock (a sweep given its own ``now``).
        """
        store = write if write is not None else self._save
        if load is None:
            load = self.live if owner is None else functools.partial(self.owned, owner)
        recording = loaded
        refusal: BaseException | None = None  # the last verdict a StaleRecording set aside
        for _ in range(SAVE_ATTEMPTS):
            if recording is None:
                recording = load(rid)
            now = self.now() if at is None else at
            try:
                change = step(recording, now)
            except StaleRecording as stale:
                refusal = stale.__cause__
                recording = None
                continue
            if change is None:
                return Outcome(recording, changed=False)
            entry = self._entry_of(change, owner, now) if self.atomic_audit else None
            if store(change.recording, recording, entry):
                if change.event is not None:
                    self.emit(
                        change.event,
                        change.recording,
                        owner,
                        at=now,
                        attributes=change.attributes,
                        audited=entry is not None,
                    )
                return Outcome(change.recording, changed=True)
            recording = None
        raise InvalidStatusTransitionError(
            "The recording kept changing underneath this operation; retry",
            recording_id=str(rid),
        ) from refusal

    def emit(
        self,
        name: str,
        recording: Recording,
        user_id: uuid.UUID | None,
        *,
        at: dt.datetime | None = None,
        attributes: Mapping[str, AttributeValue] | None = None,
        audited: bool = False,
    ) -> None:
        """Publish one event about ``recording`` (after the change it reports was stored).

        An audited change (:data:`AUDITED_EVENTS`) whose entry was not stored
        with it (``audited``) is written to the audit trail first. Should that
        write fail, the change stands (it was stored already): its event is
        published all the same, the failure is logged with the recording's id
        and the action, so the gap in the trail is known, and then raised.
        """
        moment = recording.updated_at if at is None else at
        action = AUDITED_EVENTS.get(name)
        try:
            if action is not None and not audited:
                self.audit(action, recording, user_id, at=moment, attributes=attributes)
        finally:  # a stored change is always published: a retry finds nothing left to change
            self._publish(name, recording, user_id, moment, attributes)

    def _publish(
        self,
        name: str,
        recording: Recording,
        user_id: uuid.UUID | None,
        moment: dt.datetime,
        attributes: Mapping[str, AttributeValue] | None,
    ) -> None:
        if not self.publisher.wanted:
            return  # nobody listens: skip building the event on the hot path
        self.publisher.publish(
            RecordingEvent(
                name=name,
                recording_id=recording.id,
                user_id=user_id,
                at=moment,
                attributes={"status": recording.status.value, **(attributes or {})},
            )
        )

    def audit(
        self,
        action: str,
        recording: Recording,
        actor: uuid.UUID | None,
        *,
        at: dt.datetime,
        attributes: Mapping[str, AuditValue] | None = None,
    ) -> None:
        """Append an audit entry for ``recording`` to the repository; raise if it is not stored.

        The entry carries the recording's status and ``attributes`` (codes
        and counts, as events do).
        """
        entry = _entry(action, recording, actor, at, attributes)
        try:
            self.repository.record_audit(entry)
        except RecordingError:
            _logger.exception(
                "Audit entry %s for recording %s could not be stored", action, recording.id
            )
            raise

    def claimed(self, claim: dt.datetime | None) -> Write | None:
        """Return the write of whoever holds ``claim`` (a worker, the sweeper), or None for none.

        It lands only while the stored lease is still that claim: the step
        checked the claim on the recording it loaded, and another party may
        take the recording over (or a renewal end the claim) before the write;
        the write then loses and the step runs again on the fresh recording.
        """
        if claim is None:
            return None

        def write(new: Recording, loaded: Recording, entry: AuditEntry | None) -> bool:
            return self._save(new, loaded, entry, lease=claim)

        return write

    def _save(
        self,
        new: Recording,
        loaded: Recording,
        entry: AuditEntry | None,
        *,
        lease: dt.datetime | None = None,
    ) -> bool:
        if entry is None:  # a repository without AuditedWrites is never given ``audit=``
            return self.repository.save(
                new, expected_status=loaded.status, previous=loaded, expected_lease=lease
            )
        return cast("AuditedWrites", self.repository).save(
            new, expected_status=loaded.status, previous=loaded, expected_lease=lease, audit=entry
        )

    def purge_write(self, new: Recording, _loaded: Recording, entry: AuditEntry | None) -> bool:
        """Purge ``new`` (a :data:`Write`): ``mark_purged``, with the entry when there is one."""
        if entry is None:
            return self.repository.mark_purged(new)
        return cast("AuditedWrites", self.repository).mark_purged(new, audit=entry)

    def _entry_of(
        self, change: Change, actor: uuid.UUID | None, at: dt.datetime
    ) -> AuditEntry | None:
        """Return the audit entry of ``change`` when its event is audited, else None."""
        action = None if change.event is None else AUDITED_EVENTS.get(change.event)
        if action is None:
            return None
        return _entry(action, change.recording, actor, at, change.attributes)


def _entry(
    action: str,
    recording: Recording,
    actor: uuid.UUID | None,
    at: dt.datetime,
    attributes: Mapping[str, AuditValue] | None,
) -> AuditEntry:
    return AuditEntry(
        recording_id=recording.id,
        action=action,
        actor_user_id=actor,
        at=at,
        attributes={"status": recording.status.value, **(attributes or {})},
    )
