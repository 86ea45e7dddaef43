"""Rows of the recordings table to and from :class:`~helppet_recordings.models.Recording`.

One list drives both directions: :data:`FIELDS`, the entity's attrs fields,
each stored in the column of the same name. How a value crosses is derived
from the field's type: datetimes are stored in UTC (and read back aware),
enums as their value, the metadata dict as compact JSON; everything else as
is. A field of a type this module does not know fails at import, so a new
field cannot be stored wrongly by accident; a new field without a column
fails the repository's table check and the field/column test. Audit trail
rows map to :class:`~helppet_recordings.audit.AuditEntry` here too.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import types
import typing
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final

import attrs

from helppet_recordings import policy
from helppet_recordings.audit import AuditEntry
from helppet_recordings.errors import RepositoryError
from helppet_recordings.models import Recording

__all__ = [
    "FIELDS",
    "check_columns",
    "from_db_time",
    "to_audit_entry",
    "to_audit_row",
    "to_db_time",
    "to_recording",
    "to_row",
]

FIELDS: Final[tuple[str, ...]] = tuple(field.name for field in attrs.fields(Recording))
"""Every ``Recording`` field, in declaration order; each is stored in the column of its name.

Statements select the columns in this order, so :func:`to_recording` reads a
row by these names.
"""

_Convert = Callable[[Any], Any]


def to_db_time(value: dt.datetime | None) -> dt.datetime | None:
    """Return ``value`` in UTC; SQLite stores no offset, so every stored time is UTC."""
    if value is None:
        return None
    if value.tzinfo is None or value.utcoffset() is None:
        msg = "datetimes stored in the repository must be timezone-aware"
        raise ValueError(msg)
    return value.astimezone(dt.UTC)


def from_db_time(value: dt.datetime | None) -> dt.datetime | None:
    """Return a stored time as an aware UTC datetime (SQLite gives it back naive)."""
    if value is None:
        return None
    if value.tzinfo is dt.UTC:
        return value
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def _enum_value(kind: type[enum.Enum]) -> _Convert:
    def write(value: Any) -> Any:
        return kind(value).value

    return write


def _converters(annotation: Any) -> tuple[bool, _Convert | None, _Convert | None]:
    """Return (nullable, to column, from column) for a field of type ``annotation``."""
    args = typing.get_args(annotation)
    nullable = typing.get_origin(annotation) in {typing.Union, types.UnionType} and (
        type(None) in args
    )
    if nullable:
        (annotation,) = (arg for arg in args if arg is not type(None))
    base = typing.get_origin(annotation) or annotation
    if base is dt.datetime:
        return nullable, to_db_time, from_db_time
    if isinstance(base, type) and issubclass(base, enum.Enum):
        return nullable, _enum_value(base), {member.value: member for member in base}.__getitem__
    if base is dict:
        return nullable, policy.dump_metadata, json.loads
    if base is bool:
        return nullable, None, bool
    if base in {str, int, float, uuid.UUID}:
        return nullable, None, None
    msg = f"no column mapping for Recording fields of type {annotation!r}"  # pragma: no cover
    raise TypeError(msg)  # pragma: no cover


_HINTS: Final = typing.get_type_hints(Recording)
_MAPPERS: Final = tuple((name, *_converters(_HINTS[name])) for name in FIELDS)
_WRITERS: Final = tuple((name, write) for name, _, write, _ in _MAPPERS if write is not None)
_READERS: Final = tuple((name, read) for name, _, _, read in _MAPPERS if read is not None)
_REQUIRED: Final = tuple(name for name, nullable, _, _ in _MAPPERS if not nullable)
_ID_POSITION: Final = FIELDS.index("id")


def check_columns(columns: Iterable[str]) -> None:
    """Raise ``ValueError`` naming every ``Recording`` field that has no column among ``columns``.

    Extra columns (a host's own additions) are allowed.
    """
    missing = sorted(set(FIELDS).difference(columns))
    if missing:
        msg = f"the recordings table has no column for Recording field(s) {missing}"
        raise ValueError(msg)


def to_row(recording: Recording) -> dict[str, Any]:
    """Return the column values of ``recording``, keyed by column name.

    Raises ``ValueError`` for a naive datetime and ``ValidationError`` for
    metadata that does not fit its column.
    """
    row = {name: getattr(recording, name) for name in FIELDS}
    for name, write in _WRITERS:
        value = row[name]
        if value is not None:
            row[name] = write(value)
    return row


def to_recording(row: Sequence[Any]) -> Recording:
    """Return the entity for a row of the :data:`FIELDS` columns, in that order.

    A row the package cannot read (an unknown status, a NULL where the entity
    needs a value, bad JSON) is a ``RepositoryError`` naming the column
    (``details["column"]``, or ``"row"`` when the entity refused the values
    together) and the kind of problem (``details["reason"]``). It chains
    nothing: the parser's error would quote the stored value (a
    ``JSONDecodeError`` keeps the whole metadata document), and a host logging
    the error with its traceback would write it out.
    """
    values = dict(zip(FIELDS, row, strict=True))
    for name in _REQUIRED:
        if values[name] is None:
            raise _unreadable(row, name, "null")
    for name, read in _READERS:
        value = values[name]
        if value is None:
            continue
        try:
            values[name] = read(value)
            continue
        except (ValueError, TypeError, KeyError) as exc:
            problem = type(exc).__name__
        raise _unreadable(row, name, problem)  # outside the except: no __context__ either
    try:
        return Recording(**values)
    except (ValueError, TypeError) as exc:
        problem = type(exc).__name__
    raise _unreadable(row, "row", problem)


def _unreadable(row: Sequence[Any], column: str, reason: str) -> RepositoryError:
    """Build the error for a stored row the entity cannot hold, quoting no stored value."""
    return RepositoryError(
        "A stored recording could not be read",
        operation="read",
        recording_id=str(row[_ID_POSITION]),
        column=column,
        reason=reason,
    )


def to_audit_row(entry: AuditEntry) -> dict[str, Any]:
    """Return the column values of ``entry`` (``seq`` is the database's)."""
    return {
        "id": entry.id,
        "recording_id": entry.recording_id,
        "action": entry.action,
        "actor_user_id": entry.actor_user_id,
        "at": to_db_time(entry.at),
        "attributes": json.dumps(dict(entry.attributes), separators=(",", ":"), sort_keys=True),
    }


def to_audit_entry(row: Sequence[Any]) -> AuditEntry:
    """Return the entry of a row of :attr:`AuditStatements.trail`; an unreadable row is an error."""
    entry_id, recording_id, action, actor, at, attributes = row
    try:
        moment = from_db_time(at)
        if moment is None:
            msg = "at is NULL"
            raise ValueError(msg)
        return AuditEntry(
            id=entry_id,
            recording_id=recording_id,
            action=action,
            actor_user_id=actor,
            at=moment,
            attributes=json.loads(attributes),
        )
    except (ValueError, TypeError) as exc:
        problem = type(exc).__name__
    # Raised outside the except, chaining nothing: a JSONDecodeError keeps the whole document.
    raise RepositoryError(
        "A stored audit entry could not be read",
        operation="audit_trail",
        recording_id=str(recording_id),
        reason=problem,
    )
