"""The per-request statements run straight on the driver's cursor, where that changes nothing.

A completion runs two statements and an initiate one; on PostgreSQL with
psycopg 3, SQLAlchemy's execution around each (execution context, result
metadata built from the cursor's description, row objects) cost more CPU than
the driver's own work, and under load about as much as the rest of the
request's database work. For the statements of :class:`DriverPath`
(``get``, ``add`` and a transition's ``UPDATE``), SQLAlchemy still builds and
compiles the statement (once), owns the pool, the connection and its
autocommit setting; only the execute goes to the DB-API cursor.

That is exact only where SQLAlchemy would hand every value through unchanged
and nobody watches its executions, so :func:`driver_path` offers the path
only for psycopg 3, an engine without a ``schema_translate_map``, and a table
whose columns are all of types psycopg reads and writes natively, with no
Python-side default: the package's own table, and a host's table built with
``define_recordings_table``. Anything else (another driver, a ``TypeDecorator``,
an ``Enum``, UUIDs stored as text, a column default computed in Python) keeps
SQLAlchemy's execution. So does every statement while the engine logs
statements (``echo``, or the ``sqlalchemy.engine`` logger at INFO) or has
``before_cursor_execute``, ``after_cursor_execute`` or ``handle_error``
listeners (tracing, statement comments): those see every statement, as
without the driver path.

A driver error becomes the exception SQLAlchemy would have raised
(``sqlalchemy.exc.DBAPIError.instance``, wrapping the same driver error),
which the repository translates, and strips of every value, as usual; the
statement is not sent again, so a lock or statement timeout is waited for
once. A disconnect, and a value that fails its bind conversion, go to
SQLAlchemy instead (:class:`NotOnDriverPath`): the statement runs again
there, which fails as it would have (a statement that failed changed
nothing, each runs in autocommit) and lets SQLAlchemy invalidate the pool or
report the value.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, cast

import attrs
import sqlalchemy as sa
from sqlalchemy.sql.compiler import SQLCompiler

__all__ = ["DriverPath", "NotOnDriverPath", "driver_path"]

_NATIVE_TYPES: Final = (sa.Uuid, sa.String, sa.Integer, sa.Float, sa.DateTime, sa.Boolean)
"""Column types psycopg 3 binds and returns as the Python values SQLAlchemy would pass on."""

_MAX_COMPILED: Final = 512
"""Compiled statements kept (a handful of transitions and INSERT column sets occur)."""


class NotOnDriverPath(Exception):  # noqa: N818 - a signal, not an error
    """Run this statement through SQLAlchemy instead (raised before or instead of an answer)."""


def driver_path(
    dialect: sa.Dialect,
    table: sa.Table,
    *,
    schema_translate_map: Mapping[str | None, str | None] | None = None,
) -> DriverPath | None:
    """Return the driver path for ``table`` under ``dialect``; None where it would change anything.

    ``schema_translate_map`` is the engine's: SQLAlchemy applies it when it
    executes a statement, which the driver path skips.
    """
    if dialect.name != "postgresql" or dialect.driver != "psycopg" or schema_translate_map:
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
    if isinstance(impl, sa.Enum):
        return False  # a String that SQLAlchemy validates and may turn into enum members
    if isinstance(impl, sa.Uuid):
        return bool(impl.as_uuid and impl.native_uuid)
    if isinstance(impl, sa.Float):
        return not impl.asdecimal
    return isinstance(impl, _NATIVE_TYPES)


def _watched(connection: sa.Connection) -> bool:
    """Whether the engine logs statements or has listeners that must see each execution."""
    dispatch = connection.dispatch
    return bool(
        dispatch.before_cursor_execute
        or dispatch.after_cursor_execute
        or connection.dialect.dispatch.handle_error
        or connection.engine.logger.isEnabledFor(logging.INFO)
    )


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
        self._dbapi_error: type[Exception] = dialect.loaded_dbapi.Error

    def first(
        self, connection: sa.Connection, statement: sa.ClauseElement, params: dict[str, Any]
    ) -> Sequence[Any] | None:
        """Run a query; return its first row as a tuple, or None.

        Raises :class:`NotOnDriverPath` where SQLAlchemy must run it, and
        SQLAlchemy's ``DBAPIError`` subclass for a driver error.
        """
        row: Sequence[Any] | None = self._run(
            connection, statement, statement, params, lambda cursor: cursor.fetchone()
        )
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
        count: int = self._run(
            connection, statement, key, params, lambda cursor: cursor.rowcount, by_keys=by_keys
        )
        return count

    def _run(
        self,
        connection: sa.Connection,
        statement: sa.ClauseElement,
        key: object,
        params: dict[str, Any],
        answer: Callable[[Any], Any],
        *,
        by_keys: bool = False,
    ) -> Any:
        if _watched(connection):
            raise NotOnDriverPath
        compiled = self._compiled.get(key)
        if compiled is None:
            compiled = self._compile(statement, sorted(params) if by_keys else None)
            if len(self._compiled) < _MAX_COMPILED:
                self._compiled[key] = compiled
        if compiled.processors:
            try:
                params = {
                    name: compiled.processors[name](value) if name in compiled.processors else value
                    for name, value in params.items()
                }
            except Exception as exc:
                raise NotOnDriverPath from exc  # SQLAlchemy reports the value as it would
        dbapi_connection = connection.connection
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(compiled.sql, params)
            return answer(cursor)
        except self._dbapi_error as exc:
            if self._dialect.is_disconnect(cast("Any", exc), dbapi_connection, cursor):
                raise NotOnDriverPath from exc  # SQLAlchemy invalidates the pool
            # As SQLAlchemy does; translate_errors then drops the values from the chain.
            raise sa.exc.DBAPIError.instance(
                compiled.sql,
                params,
                exc,
                self._dbapi_error,
                hide_parameters=connection.engine.hide_parameters,
                dialect=self._dialect,
            ) from exc
        finally:
            cursor.close()

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
