"""Turning what callers pass into checked values: ids, statuses, requests, times.

Every failure is a ``VALIDATION_ERROR`` naming the field; the offending input
is never echoed back.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import uuid
from collections.abc import Mapping
from typing import Final, TypeVar

import pydantic

from helppet_recordings import policy
from helppet_recordings.errors import ValidationError
from helppet_recordings.status import RecordingStatus

__all__ = [
    "MAX_ERROR_LENGTH",
    "MAX_OFFSET",
    "aware",
    "check_positive",
    "check_range",
    "error_text",
    "optional_status",
    "optional_uuid",
    "parse",
    "recording_id",
    "transcript_fields",
    "user_id",
    "validation_error_from",
]

_Model = TypeVar("_Model", bound=pydantic.BaseModel)

MAX_ERROR_LENGTH: Final = 10_000
MAX_OFFSET: Final = 2**31 - 1  # beyond any real listing, and within every database's integers
MAX_WAIT_SECONDS: Final = 30 * 24 * 60 * 60
"""The longest lease or retry wait taken: longer ones are mistakes (or would overflow a date)."""
_LANGUAGE_TAG = re.compile(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8}){0,2}")
_STATUS_VALUES: Final = tuple(s.value for s in RecordingStatus)


def parse(model: type[_Model], value: object) -> _Model:
    """Return ``value`` as ``model``: the model itself, or a mapping validated into it."""
    if isinstance(value, model):
        return value
    if not isinstance(value, Mapping):
        raise ValidationError(
            f"Expected a {model.__name__} or a JSON object",
            errors=[{"field": "", "message": "must be an object"}],
        )
    try:
        return model.model_validate(value)
    except pydantic.ValidationError as exc:
        raise validation_error_from(exc) from None


def validation_error_from(exc: pydantic.ValidationError) -> ValidationError:
    """Translate a pydantic error into ``VALIDATION_ERROR``, one entry per field problem.

    The offending input is never echoed back: it may be huge or sensitive.
    """
    errors = [
        {
            "field": ".".join(str(part) for part in error["loc"]),
            "message": str(error["msg"]).removeprefix("Value error, "),
            "type": error["type"],
        }
        for error in exc.errors(include_url=False, include_input=False)
    ]
    fields = ", ".join(sorted({e["field"] or "body" for e in errors}))
    return ValidationError(f"Invalid request: check {fields}", errors=errors)


def _uuid(value: object, field: str) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    if isinstance(value, str) and len(value) <= 64:
        try:
            return uuid.UUID(value)
        except ValueError:
            pass
    raise ValidationError.for_field(field, "must be a UUID")


def user_id(value: object) -> uuid.UUID:
    """Return the caller's id; the nil UUID is refused."""
    parsed = _uuid(value, "user_id")
    if parsed.int == 0:
        raise ValidationError.for_field("user_id", "must not be the nil UUID")
    return parsed


def recording_id(value: object) -> uuid.UUID:
    """Return a recording id."""
    return _uuid(value, "recording_id")


def optional_uuid(value: object, field: str) -> uuid.UUID | None:
    """Return an optional id filter; the nil UUID is refused."""
    if value is None:
        return None
    parsed = _uuid(value, field)
    if parsed.int == 0:
        raise ValidationError.for_field(field, "must not be the nil UUID")
    return parsed


def optional_status(value: object) -> RecordingStatus | None:
    """Return an optional status filter given as the enum or its value."""
    if value is None or isinstance(value, RecordingStatus):
        return value
    if isinstance(value, str) and value in _STATUS_VALUES:
        return RecordingStatus(value)
    raise ValidationError.for_field("status", f"must be one of {', '.join(_STATUS_VALUES)}")


def check_positive(value: object, name: str) -> None:
    """Refuse anything but a positive integer (booleans included)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValidationError.for_field(name, "must be a positive integer")


def check_lease(value: object, name: str) -> None:
    """Refuse anything but a whole number of seconds from 1 to ``MAX_WAIT_SECONDS``."""
    check_range(value, name, 1, MAX_WAIT_SECONDS)


def check_wait(value: object, name: str) -> float:
    """Return a wait in seconds as a float; refuse anything but a number from 0 to 30 days."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not 0 <= value <= MAX_WAIT_SECONDS
    ):
        raise ValidationError.for_field(
            name, f"must be a number of seconds from 0 to {MAX_WAIT_SECONDS}"
        )
    return float(value)


def check_range(value: object, name: str, low: int, high: int) -> None:
    """Refuse anything but an integer from ``low`` to ``high`` (booleans included)."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValidationError.for_field(name, f"must be an integer from {low} to {high}")


def aware(value: dt.datetime, name: str) -> dt.datetime:
    """Return ``value`` in UTC; refuse a naive datetime, or one beyond UTC's range.

    Every time in the package carries its zone, and is reckoned in UTC: a
    time in a zone with daylight saving would make ``now - 30 days`` off by
    the hour the clocks moved. ``datetime(1, 1, 1, tzinfo=+05:00)`` is aware,
    but has no UTC form.
    """
    if not isinstance(value, dt.datetime) or value.tzinfo is None:
        raise ValidationError.for_field(name, "must be a timezone-aware datetime")
    try:
        return value.astimezone(dt.UTC)
    except OverflowError:
        raise ValidationError.for_field(name, "is beyond the range of UTC datetimes") from None


def error_text(error: object) -> str:
    """Return a failure reason fit to store: non-empty, storable text, cut to a bounded length."""
    if not isinstance(error, str) or not error.strip():
        raise ValidationError.for_field("error", "must be a non-empty description")
    policy.check_text(error, "error")
    return error if len(error) <= MAX_ERROR_LENGTH else error[: MAX_ERROR_LENGTH - 1] + "…"


def transcript_fields(
    text: object, confidence: object, language: object, service: object
) -> tuple[str, float | None, str | None, str | None]:
    """Check a transcript's text, confidence (0..1), language tag and service name."""
    if not isinstance(text, str):
        raise ValidationError.for_field("text", "must be a string")
    policy.check_text(text, "text")
    if confidence is not None and (
        isinstance(confidence, bool)
        or not isinstance(confidence, int | float)
        or not math.isfinite(confidence)
        or not 0 <= confidence <= 1
    ):
        raise ValidationError.for_field("confidence", "must be a number from 0 to 1")
    if language is not None and (
        not isinstance(language, str) or len(language) > 10 or not _LANGUAGE_TAG.fullmatch(language)
    ):
        raise ValidationError.for_field("language", "must be a language tag such as 'en-US'")
    if service is not None and (not isinstance(service, str) or not 1 <= len(service) <= 50):
        raise ValidationError.for_field("service", "must be 1 to 50 characters")
    if service is not None:
        policy.check_text(service, "service")
    return text, None if confidence is None else float(confidence), language, service
