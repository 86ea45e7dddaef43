"""The reporting use cases (system operations): a recording's audit trail, statistics."""

from __future__ import annotations

import datetime as dt
import uuid

from helppet_recordings.audit import AuditEntry
from helppet_recordings.errors import RecordingNotFoundError, ValidationError
from helppet_recordings.service import inputs
from helppet_recordings.service.changes import ServiceContext
from helppet_recordings.stats import RecordingStats

__all__ = ["audit_trail", "stats"]


def audit_trail(ctx: ServiceContext, recording_id: uuid.UUID | str) -> list[AuditEntry]:
    """Return every audit entry of a recording, oldest first, whatever its state.

    Deleted and purged recordings keep their trail. A recording the
    repository never held (and that has no trail) is ``RECORDING_NOT_FOUND``.
    """
    rid = inputs.recording_id(recording_id)
    entries = ctx.repository.audit_trail(rid)
    if not entries and ctx.repository.get(rid) is None:
        raise RecordingNotFoundError(recording_id=str(rid))
    return entries


def stats(
    ctx: ServiceContext, *, since: dt.datetime | None, until: dt.datetime | None
) -> RecordingStats:
    """Return the statistics of the recordings created in ``[since, until)``."""
    start = None if since is None else inputs.aware(since, "since")
    end = None if until is None else inputs.aware(until, "until")
    if start is not None and end is not None and start >= end:
        raise ValidationError.for_field("until", "must be later than since")
    computed = ctx.repository.stats(since=start, until=end)
    return RecordingStats.from_repository(computed, since=start, until=end)
