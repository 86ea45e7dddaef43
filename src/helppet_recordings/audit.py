"""The audit trail: who read or changed a recording's personal content, and when.

The service writes one :class:`AuditEntry` to the repository for each of
these actions (``RecordingService.audit_trail(recording_id)`` reads them back,
oldest first):

==========================  =======================================================
``download_url.issued``     a signed download URL was handed out (written *before*
                            the URL is returned: no entry, no URL)
``transcript.read``         ``get_recording`` returned the transcript text (written
                            before the response is returned)
``recording.deleted``       its owner soft-deleted it (written after the change)
``recording.purged``        its audio was removed and its row scrubbed
``recording.reprocessed``   a failed recording was sent back for another attempt
==========================  =======================================================

The trail is append-only: the repository port has no method that changes or
removes an entry, and a purge scrubs the recording's row but never its trail.
``actor_user_id`` is the caller of a user operation and None for a system one
(a purge, a reprocess). Attributes carry codes and counts only (no filename,
transcript or metadata value), so the trail itself holds no personal content.
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from collections.abc import Mapping
from typing import Any, Final

import attrs

__all__ = [
    "AUDIT_ACTIONS",
    "DOWNLOAD_URL_ISSUED",
    "MAX_ATTRIBUTES",
    "MAX_ATTRIBUTE_TEXT",
    "RECORDING_DELETED",
    "RECORDING_PURGED",
    "RECORDING_REPROCESSED",
    "TRANSCRIPT_READ",
    "AuditEntry",
    "AuditValue",
]

DOWNLOAD_URL_ISSUED: Final = "download_url.issued"
TRANSCRIPT_READ: Final = "transcript.read"
RECORDING_DELETED: Final = "recording.deleted"
RECORDING_PURGED: Final = "recording.purged"
RECORDING_REPROCESSED: Final = "recording.reprocessed"

AUDIT_ACTIONS: Final = frozenset(
    {
        DOWNLOAD_URL_ISSUED,
        TRANSCRIPT_READ,
        RECORDING_DELETED,
        RECORDING_PURGED,
        RECORDING_REPROCESSED,
    }
)
"""Every action the trail records."""

MAX_ATTRIBUTES: Final = 16
"""At most this many attributes on one entry."""

MAX_ATTRIBUTE_TEXT: Final = 64
"""The longest text an attribute key or value may be: room for a code, none for prose."""

AuditValue = str | int | float | bool | None
"""What an audit attribute may hold: a code, a count, a size or a flag."""


def _check_aware(_instance: object, attribute: attrs.Attribute[Any], value: dt.datetime) -> None:
    if not isinstance(value, dt.datetime) or value.utcoffset() is None:
        msg = f"{attribute.name} must be a timezone-aware datetime"
        raise ValueError(msg)


def _check_attributes(
    _instance: object, _attribute: attrs.Attribute[Any], value: Mapping[object, object]
) -> None:
    if len(value) > MAX_ATTRIBUTES:
        msg = f"an audit entry carries at most {MAX_ATTRIBUTES} attributes"
        raise ValueError(msg)
    for key, item in value.items():
        if not isinstance(key, str) or not key or len(key) > MAX_ATTRIBUTE_TEXT:
            msg = "audit attribute names are short, non-empty strings"
            raise ValueError(msg)
        if isinstance(item, str) and len(item) > MAX_ATTRIBUTE_TEXT:
            msg = f"audit attribute {key!r} is longer than a code ({MAX_ATTRIBUTE_TEXT} characters)"
            raise ValueError(msg)
        if isinstance(item, float) and not math.isfinite(item):
            msg = f"audit attribute {key!r} must be a finite number"
            raise ValueError(msg)
        if item is not None and not isinstance(item, str | int | float | bool):
            msg = f"audit attribute {key!r} must be a code, a number or a flag"
            raise TypeError(msg)


def _in_utc(value: dt.datetime) -> dt.datetime:
    if isinstance(value, dt.datetime) and value.utcoffset() is not None:
        return value.astimezone(dt.UTC)
    return value  # refused by the validator


def _frozen_attributes(value: Mapping[str, AuditValue] | None) -> Mapping[str, AuditValue]:
    return dict(value or {})


@attrs.frozen(kw_only=True)
class AuditEntry:
    """One audited action on one recording.

    ``at`` is the service clock's time of the action (timezone-aware, kept in UTC);
    ``attributes`` hold codes and counts only, short enough that no free text
    fits (see :data:`MAX_ATTRIBUTE_TEXT`).
    """

    id: uuid.UUID = attrs.field(factory=uuid.uuid4)
    recording_id: uuid.UUID
    action: str = attrs.field(validator=attrs.validators.in_(AUDIT_ACTIONS))
    actor_user_id: uuid.UUID | None
    at: dt.datetime = attrs.field(converter=_in_utc, validator=_check_aware)
    attributes: Mapping[str, AuditValue] = attrs.field(
        factory=dict, converter=_frozen_attributes, validator=_check_attributes
    )
