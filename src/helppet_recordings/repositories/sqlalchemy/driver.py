"""The per-request statements run straight on the driver's cursor, where that changes nothing.

A completion runs two statements and an initiate one; on PostgreSQL with
psycopg 3, SQLAlchemy's execution around each (execution context, result
metadata built from the cursor's description, row objects) cost more CPU than
the driver's own work, and under load about as much as the rest of the
request's database work. For the statements of :class:`DriverPath`
(``get``, ``add`` and a transition's ``UPDATE``), SQLAlchemy still builds and
compiles the statement (once), owns the pool, the connection and its
autocommit setting; only the execute goes to the DB-API cursor.

That is exact only where SQLAlchemy would hand every value through unchanged,
so :func:`driver_path` offers the path only for psycopg 3 and a table whose
columns are all of types psycopg reads and writes natively, with no
Python-side default: the package's own table, and a host's table built with
``define_recordings_table``. Anything else (another driver, a ``TypeDecorator``,
a column default computed in Python) keeps SQLAlchemy's execution.

A driver error is not translated here: the repository runs the same statement
again through SQLAlchemy on the same connection, so that its error handling
(disconnect detection, pool invalidation, exception wrapping) applies exactly
as on every other path. A statement that failed changed nothing (each runs in
autocommit), so running it again is safe.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

import attrs
import sqlalchemy as sa
from sqlalchemy.sql.compiler import SQLCompiler

__all__ = ["DriverPath", "driver_path"]

_NATIVE_TYPES: Final = (sa.Uuid, sa.String, sa.Integer, sa.Float, sa.DateTime, sa.Boolean)
"""Column types psycopg 3 binds and returns as the Python values SQLAlchemy would pass on."""

_MAX_COMPILED: Final = 512
"""Compiled statements kept (a handful of transitions and INSERT column sets occur)."""


def driver_path(dialect: sa.Dialect, table: sa.Table) -> DriverPath | None:
    """Return the driver path for ``table`` under ``dialect``; None where it would change values."""
    if dialect.name != "postgresql" or dialect.driver != "psycopg":
        return None
    if not all(_passes_through(column, dialect) for column in table.columns):
        return None
    return DriverPath(dialect)


def _passes_through(column: sa.Column[Any], dialect: sa.Dialect) -> bool:
    """Whether SQLAlchemy hands this column's values between Python and psycopg unchanged."""
    if column.default is not None or column.onupdate is not None:
        return False
    if isinstance(column.type, sa.types.TypeDecorator):
        return False
    impl = column.type.dialect_impl(dialect)
    if isinstance(impl, sa.Uuid):
        return bool(impl.as_uuid)
    if isinstance(impl, sa.Float):
        return not impl.asdecimal
    return isinstance(impl, _NATIVE_TYPES)


@attrs.frozen
class _Compiled:
    """A statement compiled for the driver: its SQL and the binds SQLAlchemy would convert."""

    sql: str
    processors: Mapping[str, Any]


class DriverPath:
    """Compile statements once and run them on the DB-API cursor of a SQLAlchemy connection.

    Build it with :func:`driver_path`, which checks that doing so passes the
    same values as SQLAlchemy would. Thread-safe: the cache only grows, and a
    statement compiled twice by racing threads compiles the same.
    """

    def __init__(self, dialect: sa.Dialect) -> None:
        self._dialect = dialect
        self._compiled: dict[object, _Compiled] = {}
        self.errors: type[Exception] = dialect.loaded_dbapi.Error
        """The DB-API's base exception: what a driver-path call can raise for the database."""

    def first(
        self, connection: sa.Connection, statement: sa.ClauseElement, params: dict[str, Any]
    ) -> Sequence[Any] | None:
        """Run a query; return its first row as a tuple, or None."""
        cursor = self._execute(connection, statement, statement, params)
        try:
            row: Sequence[Any] | None = cursor.fetchone()
        finally:
            cursor.close()
        return row

    def rowcount(
        self,
        connection: sa.Connection,
        statement: sa.ClauseElement,
        params: dict[str, Any],
        *,
        by_keys: bool = False,
    ) -> int:
        """Run a write; return how many rows it changed.

        ``by_keys`` compiles an ``INSERT`` for exactly the columns in
        ``params`` (one compiled form per column set), as SQLAlchemy does.
        """
        key: object = (statement, frozenset(params)) if by_keys else statement
        cursor = self._execute(connection, statement, key, params, by_keys=by_keys)
        try:
            count: int = cursor.rowcount
        finally:
            cursor.close()
        return count

    def _execute(
        self,
        connection: sa.Connection,
        statement: sa.ClauseElement,
        key: object,
        params: dict[str, Any],
        *,
        by_keys: bool = False,
    ) -> Any:
        compiled = self._compiled.get(key)
        if compiled is None:
            compiled = self._compile(statement, sorted(params) if by_keys else None)
            if len(self._compiled) < _MAX_COMPILED:
                self._compiled[key] = compiled
        if compiled.processors:
            params = {
                name: compiled.processors[name](value) if name in compiled.processors else value
                for name, value in params.items()
            }
        cursor = connection.connection.cursor()
        try:
            cursor.execute(compiled.sql, params)
        except BaseException:
            cursor.close()
            raise
        return cursor

    def _compile(self, statement: sa.ClauseElement, column_keys: list[str] | None) -> _Compiled:
        dialect = self._dialect
        compiled = statement.compile(dialect=dialect, column_keys=column_keys)
        if not isinstance(compiled, SQLCompiler):  # pragma: no cover - statements compile so
            msg = f"cannot run {type(statement).__name__} on the driver"
            raise TypeError(msg)
        processors = {}
        for name, bind in compiled.binds.items():
            process = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if process is not None:
                processors[name] = process
        return _Compiled(sql=compiled.string, processors=processors)
