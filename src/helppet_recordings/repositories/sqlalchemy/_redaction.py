"""Strip a database error's chain of every value of the row and of the statement's parameters.

``hide_parameters`` only keeps the parameters out of the text of SQLAlchemy's
error: the error still holds them (``params``), and the driver's error
carries what the server said, which on PostgreSQL quotes the whole row when
a NOT NULL or CHECK constraint fails (``DETAIL: Failing row contains
(...)``). A host that logs the error with its traceback, or a tool that
reads exception attributes, would record original filenames, transcripts
and metadata. :func:`redact` rewrites the chain in place instead, keeping
what an operator needs: the SQL (its placeholders, no values), each error's
class, the SQLSTATE, the names of the schema, table, column, data type and
constraint involved, and the driver's message where it cannot hold a value.
"""

from __future__ import annotations

import sqlite3
import sys
from typing import Any, Final

import sqlalchemy as sa
import sqlalchemy.exc

from helppet_recordings.errors import RecordingError

__all__ = ["redact"]

WITHHELD: Final = "message withheld: it may hold a value"
"""Stands in for a driver message that may quote a value."""

_NAMES_ONLY_CLASSES: Final = (
    "08",  # connection exception
    "0A",  # feature not supported
    "23",  # integrity constraint violation (the DETAIL quotes the row or the key)
    "25",  # invalid transaction state
    "28",  # invalid authorization
    "3D",  # invalid catalog name
    "3F",  # invalid schema name
    "40",  # transaction rollback
    "42",  # syntax error or access rule violation
    "53",  # insufficient resources
    "54",  # program limit exceeded
    "55",  # object not in prerequisite state
    "57",  # operator intervention
    "58",  # system error
)
"""SQLSTATE classes whose primary message names objects and types, never a value.

Data exceptions (``22``: ``invalid input syntax for type uuid: "..."``), a
function's ``RAISE`` (``P0``) and the rest may quote one.
"""

_NAMES_ONLY_STATES: Final = frozenset({"22001"})  # value too long for type character varying(n)

_NAME_FIELDS: Final = (
    ("schema", "schema_name"),
    ("table", "table_name"),
    ("column", "column_name"),
    ("data type", "datatype_name"),
    ("constraint", "constraint_name"),
)
"""The names a PostgreSQL error reports, as ``diag`` attributes of psycopg and psycopg2."""

_VALUE_FIELDS: Final = ("message_detail", "message_hint", "context", "internal_query")
"""PostgreSQL error fields that may quote values; never kept."""

_KEPT_DIAG_FIELDS: Final = (
    "SEVERITY",
    "SEVERITY_NONLOCALIZED",
    "SQLSTATE",
    "STATEMENT_POSITION",
    "SCHEMA_NAME",
    "TABLE_NAME",
    "COLUMN_NAME",
    "DATATYPE_NAME",
    "CONSTRAINT_NAME",
    "SOURCE_FILE",
    "SOURCE_LINE",
    "SOURCE_FUNCTION",
)
"""The psycopg 3 ``DiagnosticField`` members a redacted error keeps (and the primary, if safe)."""

_SAFE_ATTRIBUTES: Final = ("sqlite_errorcode", "sqlite_errorname")
"""Attributes of a driver error carried over to its stand-in: codes, never text."""


class WithheldError(Exception):
    """Stands in for an error in a redacted chain whose class cannot be built from a message."""


def redact(exc: BaseException) -> None:
    """Remove every row and parameter value from ``exc`` and everything chained to it, in place.

    SQLAlchemy's errors are kept (a caller may hold them) with ``params``
    dropped and their message rebuilt; every other error in the chain (the
    driver's, a failed conversion's) is replaced by one of the same class
    whose message keeps only what cannot hold a value.
    """
    _redacted(exc, {})


def _redacted(exc: BaseException, done: dict[int, BaseException]) -> BaseException:
    known = done.get(id(exc))
    if known is not None:
        return known
    # The package's own errors never put a value in their message: one being handled when
    # the database failed keeps it. What is chained to it is redacted like the rest.
    kept = isinstance(exc, sa.exc.SQLAlchemyError) or _package_error(exc)
    result = exc if kept else _stand_in(exc)
    done[id(exc)] = result
    if isinstance(exc, sa.exc.StatementError):
        _scrub(exc, done)
    suppress_context = exc.__suppress_context__
    if exc.__cause__ is not None:
        result.__cause__ = _redacted(exc.__cause__, done)
    if exc.__context__ is not None:
        result.__context__ = _redacted(exc.__context__, done)
    result.__suppress_context__ = suppress_context
    return result


def _package_error(exc: BaseException) -> bool:
    """Whether ``exc`` is one of the package's own errors (not a host's subclass of one)."""
    return isinstance(exc, RecordingError) and type(exc).__module__.startswith(
        "helppet_recordings."
    )


def _scrub(exc: sa.exc.StatementError, done: dict[int, BaseException]) -> None:
    """Drop a SQLAlchemy error's parameters and rebuild its message from its redacted cause."""
    exc.params = None
    orig = exc.orig
    if orig is None:
        return
    clean = _redacted(orig, done)
    exc.orig = clean
    text = clean.args[0] if isinstance(clean, sa.exc.SQLAlchemyError) and clean.args else clean
    exc.args = (f"({type(orig).__module__}.{type(orig).__name__}) {text}",)


def _stand_in(error: BaseException) -> BaseException:
    """Return an error of ``error``'s class telling what it did without a value of the row."""
    message = _safe_message(error)
    stand_in: BaseException
    try:
        stand_in = type(error)(message, **_psycopg_info(error))
    except Exception:  # noqa: BLE001 - any class that cannot be built from a message alone
        stand_in = WithheldError(f"{type(error).__module__}.{type(error).__qualname__}: {message}")
    for name in _SAFE_ATTRIBUTES:
        value = getattr(error, name, None)
        if isinstance(value, int | str):
            setattr(stand_in, name, value)
    return stand_in.with_traceback(error.__traceback__)


def _safe_message(error: BaseException) -> str:
    """Return the driver's message where it cannot hold a value, with the SQLSTATE and names."""
    state = sqlstate_of(error)
    diag = getattr(error, "diag", None)
    facts = [] if state is None else [f"SQLSTATE {state}"]
    for label, field in _NAME_FIELDS:
        name = getattr(diag, field, None)
        if isinstance(name, str):
            facts.append(f"{label} {name}")
    if any(getattr(diag, field, None) for field in _VALUE_FIELDS):
        facts.append("DETAIL withheld")
    message = _driver_message(error, state, diag) or WITHHELD
    return f"{message} [{', '.join(facts)}]" if facts else message


def _driver_message(error: BaseException, state: str | None, diag: Any) -> str | None:
    """Return what the driver said, where it names things only; otherwise None."""
    if isinstance(error, sqlite3.Error):
        # SQLite's messages name tables, columns and constraints; a trigger's RAISE is the
        # host's text, which may be built from the row.
        trigger = getattr(error, "sqlite_errorname", None) == "SQLITE_CONSTRAINT_TRIGGER"
        return None if trigger else str(error)
    if state is not None:
        return _names_only_primary(state, diag)
    if _failed_to_connect(error):
        return str(error)  # no SQLSTATE: the client failed before the server answered
    return None


def _names_only_primary(state: str | None, diag: Any) -> str | None:
    """Return PostgreSQL's primary message if its SQLSTATE says it names things only.

    Never a ``RAISE``'s: a function may pick any SQLSTATE for a message built
    from the row.
    """
    primary = getattr(diag, "message_primary", None)
    if state is None or not isinstance(primary, str) or _raised_by_a_function(diag):
        return None
    names_only = state.startswith(_NAMES_ONLY_CLASSES) or state in _NAMES_ONLY_STATES
    return primary if names_only else None


def _raised_by_a_function(diag: Any) -> bool:
    """Whether a PL/pgSQL ``RAISE`` (the host's text) made the error, whatever its SQLSTATE."""
    if getattr(diag, "source_function", None) == "exec_stmt_raise":
        return True
    context = getattr(diag, "context", None)
    return isinstance(context, str) and " at RAISE" in context


def _failed_to_connect(error: BaseException) -> bool:
    """Whether ``error`` is a DB-API connection failure (its message names servers, not data)."""
    names = {cls.__name__ for cls in type(error).__mro__}
    return bool(names & {"OperationalError", "InterfaceError"})


def sqlstate_of(error: BaseException | None) -> str | None:
    """Return a driver error's SQLSTATE (psycopg's ``sqlstate``, psycopg2's ``pgcode``), or None."""
    state = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
    return state if isinstance(state, str) else None


def _psycopg_info(error: BaseException) -> dict[str, Any]:
    """For a psycopg 3 error, the ``info`` keeping its ``diag`` names (never DETAIL or HINT)."""
    psycopg = sys.modules.get("psycopg")
    if psycopg is None or not isinstance(error, psycopg.Error):
        return {}
    fields = psycopg.pq.DiagnosticField
    diag = error.diag
    info: dict[int, bytes | None] = {}
    for name in _KEPT_DIAG_FIELDS:
        value = getattr(diag, name.lower())
        if isinstance(value, str):
            info[fields[name]] = value.encode()
    primary = _names_only_primary(sqlstate_of(error), diag)
    if primary is not None:
        info[fields.MESSAGE_PRIMARY] = primary.encode()
    return {"info": info or None}
