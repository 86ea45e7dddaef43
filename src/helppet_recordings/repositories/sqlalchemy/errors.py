"""The one point where SQLAlchemy and driver errors become the package's errors.

:func:`translate_errors` wraps every database call of the repository, in the
manner of advanced-alchemy's ``wrap_sqlalchemy_exception``. What it raises
never carries SQL, parameters or server addresses (it may reach API clients).
The chained cause keeps the SQL and what the driver said for logs, but no
value of the row or of the statement's parameters: they hold original
filenames, transcripts and recording metadata (see ``_redaction``).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Final

import sqlalchemy as sa
import sqlalchemy.exc

from helppet_recordings.errors import RecordingError, RepositoryError, RepositoryUnavailableError
from helppet_recordings.repositories._duplicates import DuplicateField, duplicate_recording
from helppet_recordings.repositories.sqlalchemy._redaction import redact, sqlstate_of

__all__ = ["translate_errors"]

_LOCK_RETRY_AFTER: Final = 1
# SQLSTATEs worth retrying: connection exceptions (08), insufficient resources (53),
# operator intervention (57P01..57P05), serialization failure, deadlock, lock timeout,
# statement timeout / cancel.
_RETRYABLE_SQLSTATE_CLASSES: Final = ("08", "53", "57P")
_RETRYABLE_SQLSTATES: Final = frozenset({"40001", "40P01", "55P03", "57014"})
_LOCK_SQLSTATES: Final = frozenset({"40001", "40P01", "55P03"})
_UNIQUE_VIOLATION: Final = "23505"
# SQLite reports schema and programming problems as OperationalError too; these are not
# worth retrying. Everything else it reports that way (locked, busy, cannot open) is.
_SQLITE_PERMANENT = re.compile(
    r"no such (table|column|index)|has no column|syntax error|readonly database|malformed",
    re.IGNORECASE,
)
_SQLITE_LOCKED = re.compile(r"database( table)? is (locked|busy)", re.IGNORECASE)


@contextlib.contextmanager
def translate_errors(operation: str) -> Iterator[None]:
    """Translate SQLAlchemy errors raised inside the block into the package's errors.

    The one translation point of the repository:

    - a unique violation (duplicate id, storage key or idempotency key)
      becomes ``DuplicateRecordingError`` (a ``ValueError``), with
      ``details["field"]`` naming which;
    - a database that cannot be reached, a dropped connection, a lock or
      statement timeout, a serialization failure or deadlock, and a pool
      timeout become ``RepositoryUnavailableError`` (retryable, with
      ``retry_after``);
    - every other SQLAlchemy or driver error becomes ``RepositoryError``.

    Each is chained to the original with ``raise ... from exc``. Messages and
    details never carry SQL, parameters or server addresses: they may reach
    API clients. The cause keeps the SQL, the driver error's class, its
    SQLSTATE and the names of the table, column and constraint involved for
    logs; before it is raised, every value of the row and of the statement's
    parameters is removed from it and from everything chained to it
    (SQLAlchemy's ``params``, PostgreSQL's ``DETAIL: Failing row contains
    (...)``), whatever the engine's ``hide_parameters``.
    """
    try:
        yield
    except sa.exc.SQLAlchemyError as exc:
        error = _translated(exc, operation)
        redact(exc)
        raise error from exc


def _translated(exc: sa.exc.SQLAlchemyError, operation: str) -> RecordingError:
    """Return the package's error for ``exc`` (read before ``exc`` is redacted)."""
    if isinstance(exc, sa.exc.IntegrityError):
        if _sqlstate(exc) == _UNIQUE_VIOLATION or "UNIQUE constraint failed" in str(exc.orig):
            return duplicate_recording(_duplicate_field(exc))
        return RepositoryError(
            "The recordings database refused the change (integrity constraint)",
            operation=operation,
            reason=_reason(exc),
        )
    if isinstance(exc, sa.exc.DBAPIError):
        retry_after = _retry_after(exc)
        if retry_after is not None:
            return RepositoryUnavailableError(
                retry_after=retry_after, operation=operation, reason=_reason(exc)
            )
        return RepositoryError(operation=operation, reason=_reason(exc))
    if isinstance(exc, sa.exc.TimeoutError | sa.exc.DisconnectionError):
        return RepositoryUnavailableError(operation=operation, reason=_reason(exc))
    return RepositoryError(operation=operation, reason=_reason(exc))


def _sqlstate(exc: sa.exc.DBAPIError) -> str | None:
    return sqlstate_of(exc.orig)


def _reason(exc: Exception) -> str:
    """Describe ``exc`` safely: its class and, for a driver error, its SQLSTATE."""
    if isinstance(exc, sa.exc.DBAPIError) and exc.orig is not None:
        state = _sqlstate(exc)
        name = type(exc.orig).__name__
        return f"{name} ({state})" if state else name
    return type(exc).__name__


def _retry_after(exc: sa.exc.DBAPIError) -> int | None:
    """Return seconds to wait if retrying ``exc`` can succeed, else None."""
    default = RepositoryUnavailableError.default_retry_after
    state = _sqlstate(exc)
    if exc.connection_invalidated or isinstance(exc, sa.exc.InterfaceError):
        retry_after: int | None = default
    elif state is not None:
        retryable = state in _RETRYABLE_SQLSTATES or state.startswith(_RETRYABLE_SQLSTATE_CLASSES)
        retry_after = _LOCK_RETRY_AFTER if state in _LOCK_SQLSTATES else default
        retry_after = retry_after if retryable or state in _LOCK_SQLSTATES else None
    elif isinstance(exc, sa.exc.OperationalError):
        # No SQLSTATE: the driver failed before the server answered (cannot connect,
        # connection lost, timeout), or SQLite reports a lock, an unopenable file or a
        # schema problem (the last is not worth retrying).
        message = str(exc.orig)
        retry_after = _LOCK_RETRY_AFTER if _SQLITE_LOCKED.search(message) else default
        retry_after = None if _SQLITE_PERMANENT.search(message) else retry_after
    else:
        retry_after = None
    return retry_after


def _duplicate_field(exc: sa.exc.IntegrityError) -> DuplicateField:
    """Say which unique value was taken, from the constraint's name or the driver's message.

    PostgreSQL names the constraint (``uq_<table>_s3_key``,
    ``uq_<table>_owner_idempotency_key``, ``<table>_pkey``); SQLite names the
    columns (``UNIQUE constraint failed: <table>.s3_key``).
    """
    constraint = getattr(getattr(exc.orig, "diag", None), "constraint_name", None)
    text = constraint if isinstance(constraint, str) else str(exc.orig).split("\n", 1)[0]
    text = text.strip().strip('"')
    if text.endswith("idempotency_key"):
        return "idempotency_key"
    if text.endswith("s3_key"):
        return "s3_key"
    return "id"
