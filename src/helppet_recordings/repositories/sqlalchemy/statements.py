"""Every statement the repository runs, built once per table with bound parameters."""

from __future__ import annotations

from typing import Any, Final

import sqlalchemy as sa

from helppet_recordings.models import Recording, RecordingFilter
from helppet_recordings.repositories.sqlalchemy.mapping import FIELDS, check_columns
from helppet_recordings.repositories.sqlalchemy.schema import (
    LIVE_PREDICATE,
    PURGEABLE_PREDICATE,
    STALE_UPLOAD_PREDICATE,
    WORK_QUEUE_PREDICATE,
)
from helppet_recordings.status import RecordingStatus

__all__ = ["Statements", "changed_columns", "filter_params", "prefix_successor"]

_FILTER_COLUMNS: Final = {
    "user_id": "recorded_by_user_id",
    "appointment_id": "appointment_id",
    "visit_id": "visit_id",
    "status": "status",
}
_IMMUTABLE: Final = frozenset({"id", "s3_key", "idempotency_key"})
_MUTABLE: Final = tuple(name for name in FIELDS if name not in _IMMUTABLE)
_MAX_TRANSITIONS: Final = 256
"""Distinct column sets whose ``UPDATE`` is kept built (a handful occur in practice)."""
_MAX_CODE_POINT: Final = 0x10FFFF
_SURROGATES: Final = range(0xD800, 0xE000)


class Statements:
    """Every statement the repository runs, built once per table with bound parameters.

    Reusing statement objects lets SQLAlchemy skip building them and computing
    their cache keys on every call; only the parameters change.
    """

    def __init__(self, table: sa.Table) -> None:
        check_columns(table.c.keys())
        self.table = table
        # The columns of FIELDS, in its order: rows read back by name (see mapping.py).
        self.columns = columns = [table.c[name] for name in FIELDS]
        # Literal SQL, word for word the partial indexes' predicates (see schema.py).
        self.live = sa.text(LIVE_PREDICATE)
        lease = table.c.lease_expires_at
        self._lease_held = lease == sa.bindparam("w_lease", type_=lease.type)
        self.select = sa.select(*columns)
        self.insert = table.insert()
        # Columns whose omission from an INSERT would not mean NULL (they have a server default).
        self.server_defaults = frozenset(
            name for name in FIELDS if table.c[name].server_default is not None
        )
        self.get = self.select.where(table.c.id == sa.bindparam("id"))
        self.keys_of = sa.select(table.c.s3_key, table.c.idempotency_key).where(
            table.c.id == sa.bindparam("id")
        )
        self.update = (
            table.update()
            .where(
                table.c.id == sa.bindparam("v_id"),
                table.c.s3_key == sa.bindparam("v_s3_key"),
                table.c.idempotency_key.is_not_distinct_from(sa.bindparam("v_idempotency_key")),
                table.c.status == sa.bindparam("w_status"),
                self.live,
            )
            .values(self._set(columns, exclude=_IMMUTABLE))
        )
        self.update_leased = self.update.where(self._lease_held)
        """``update``, only while the stored lease is ``:w_lease`` (a worker's claim)."""
        self.stale = (
            self.select.where(
                sa.text(STALE_UPLOAD_PREDICATE),
                table.c.upload_expires_at
                < sa.bindparam("now", type_=table.c.upload_expires_at.type),
            )
            .order_by(table.c.upload_expires_at, table.c.id)
            .limit(sa.bindparam("limit", type_=sa.Integer()))
        )
        self.claim = self.stale.with_for_update(skip_locked=True)
        # The sweeper's claim: the deadline moves to the lease, and the lease says whose it is
        # (a renewal clears it, so a write made under the claim then changes nothing).
        self.extend_deadline = (
            table.update()
            .where(table.c.id.in_(sa.bindparam("ids", expanding=True)))
            .values(
                upload_expires_at=sa.bindparam("lease", type_=table.c.upload_expires_at.type),
                lease_expires_at=sa.bindparam("lease", type_=table.c.lease_expires_at.type),
            )
        )
        lease_type = table.c.lease_expires_at.type
        self.work = (
            self.select.where(
                sa.text(WORK_QUEUE_PREDICATE),
                table.c.lease_expires_at <= sa.bindparam("now", type_=lease_type),
            )
            .order_by(table.c.lease_expires_at, table.c.id)
            .limit(sa.bindparam("limit", type_=sa.Integer()))
        )
        self.claim_work = self.work.with_for_update(skip_locked=True)
        self.lease = (
            table.update()
            .where(table.c.id.in_(sa.bindparam("ids", expanding=True)))
            .values(lease_expires_at=sa.bindparam("lease", type_=lease_type))
        )
        self.by_upload_key = self.select.where(table.c.upload_key == sa.bindparam("key"))
        self.by_idempotency_key = self.select.where(
            table.c.recorded_by_user_id == sa.bindparam("user_id"),
            table.c.idempotency_key == sa.bindparam("key"),
        )
        self.purgeable = (
            self.select.where(
                sa.text(PURGEABLE_PREDICATE),
                table.c.deleted_at < sa.bindparam("before", type_=table.c.deleted_at.type),
            )
            .order_by(table.c.deleted_at, table.c.id)
            .limit(sa.bindparam("limit", type_=sa.Integer()))
        )
        self.purge = (
            table.update()
            .where(
                table.c.id == sa.bindparam("v_id"),
                sa.text(PURGEABLE_PREDICATE),
            )
            .values(self._set(columns, exclude=frozenset({"id"})))
        )
        self._transitions: dict[tuple[frozenset[str], bool], sa.Update] = {}
        self._by_key: dict[tuple[bool, bool], sa.Select[Any]] = {}
        self._finders: dict[frozenset[str], tuple[sa.Select[Any], sa.Select[Any]]] = {}
        self._keyset_finders: dict[
            tuple[frozenset[str], bool], tuple[sa.Select[Any], sa.Select[Any]]
        ] = {}

    @staticmethod
    def _set(
        columns: list[sa.Column[Any]], *, exclude: frozenset[str]
    ) -> dict[sa.Column[Any], sa.BindParameter[Any]]:
        """``SET column = :v_column`` for every column not in ``exclude``."""
        return {
            column: sa.bindparam(f"v_{column.name}", type_=column.type)
            for column in columns
            if column.name not in exclude
        }

    def transition(self, changed: frozenset[str], *, leased: bool = False) -> sa.Update:
        """Return the compare-and-set ``UPDATE`` that writes ``status`` and the ``changed`` columns.

        ``UPDATE ... SET status = :v_status, <column> = :v_<column> ... WHERE
        id = :v_id AND status = :w_status AND NOT is_deleted``, with
        ``leased`` ``AND lease_expires_at = :w_lease``, and when the
        multipart upload id is among the changed columns ``AND
        multipart_upload_id IS NOT DISTINCT FROM :w_upload_id`` (the id the
        writer loaded: two writers replacing it cannot both land). One statement object
        per column set, so SQLAlchemy compiles each once and the driver
        prepares it once per connection.
        """
        statement = self._transitions.get((changed, leased))
        if statement is None:
            table = self.table
            columns = [table.c[name] for name in _MUTABLE if name in changed or name == "status"]
            statement = (
                table.update()
                .where(
                    table.c.id == sa.bindparam("v_id"),
                    table.c.status == sa.bindparam("w_status"),
                    self.live,
                )
                .values(self._set(columns, exclude=_IMMUTABLE))
            )
            if leased:
                statement = statement.where(self._lease_held)
            if "multipart_upload_id" in changed:
                upload_id = table.c.multipart_upload_id
                loaded = sa.bindparam("w_upload_id", type_=upload_id.type)
                statement = statement.where(upload_id.is_not_distinct_from(loaded))
            if len(self._transitions) < _MAX_TRANSITIONS:
                self._transitions[changed, leased] = statement
        return statement

    def by_key(self, *, bounded: bool, inclusive: bool) -> sa.Select[Any]:
        """Return the key-range statement: ``:low <(=) s3_key (< :upper)``, by key."""
        statement = self._by_key.get((bounded, inclusive))
        if statement is None:
            key = self.table.c.s3_key
            low = sa.bindparam("low", type_=key.type)
            conditions = [key >= low if inclusive else key > low]
            if bounded:
                conditions.append(key < sa.bindparam("upper", type_=key.type))
            statement = self._by_key[(bounded, inclusive)] = (
                self.select.where(*conditions)
                .order_by(key)
                .limit(sa.bindparam("limit", type_=sa.Integer()))
            )
        return statement

    def finder(self, filters: frozenset[str]) -> tuple[sa.Select[Any], sa.Select[Any]]:
        """Return the page and count statements for an OFFSET listing by these filter columns."""
        statements = self._finders.get(filters)
        if statements is None:
            page = self._page(filters).offset(sa.bindparam("offset", type_=sa.Integer()))
            statements = self._finders[filters] = (page, self._count(filters))
        return statements

    def keyset_finder(
        self, filters: frozenset[str], *, after: bool
    ) -> tuple[sa.Select[Any], sa.Select[Any]]:
        """Return the page and count statements for a keyset listing by these filter columns.

        With ``after``, the page holds only rows strictly after the position
        ``(:after_created_at, :after_id)`` in newest-first order: a row-value
        comparison that both databases evaluate inside the owner index, so a
        page deep in a listing costs what the first one does.
        """
        key = (filters, after)
        statements = self._keyset_finders.get(key)
        if statements is None:
            page = self._page(filters)
            if after:
                created_at, recording_id = self.table.c.created_at, self.table.c.id
                position = sa.tuple_(
                    sa.bindparam("after_created_at", type_=created_at.type),
                    sa.bindparam("after_id", type_=recording_id.type),
                )
                page = page.where(sa.tuple_(created_at, recording_id) < position)
            statements = self._keyset_finders[key] = (page, self._count(filters))
        return statements

    def _conditions(self, filters: frozenset[str]) -> list[sa.ColumnElement[bool] | sa.TextClause]:
        """Return a listing's WHERE clause: live rows, each filter column equal to its parameter."""
        conditions: list[sa.ColumnElement[bool] | sa.TextClause] = [self.live]
        conditions.extend(
            self.table.c[_FILTER_COLUMNS[name]] == sa.bindparam(name) for name in sorted(filters)
        )
        return conditions

    def _count(self, filters: frozenset[str]) -> sa.Select[Any]:
        """``SELECT count(*)`` of a listing by these filter columns."""
        return sa.select(sa.func.count()).select_from(self.table).where(*self._conditions(filters))

    def _page(self, filters: frozenset[str]) -> sa.Select[Any]:
        """One page of a listing, newest first, carrying the listing's total in each row.

        The total is an uncorrelated subquery (run once), so a listing is one
        round trip; the count alone is for pages that come back empty.
        """
        table = self.table
        total = self._count(filters).correlate(None).scalar_subquery().label("total")
        return (
            sa.select(*self.columns, total)
            .where(*self._conditions(filters))
            .order_by(table.c.created_at.desc(), table.c.id.desc())
            .limit(sa.bindparam("limit", type_=sa.Integer()))
        )


def changed_columns(recording: Recording, previous: Recording) -> frozenset[str]:
    """Return the columns whose value in ``recording`` differs from ``previous``, plus status.

    Keys (id, storage key, idempotency key) are never among them.
    """
    changed = {name for name in _MUTABLE if getattr(recording, name) != getattr(previous, name)}
    changed.add("status")
    return frozenset(changed)


def filter_params(recording_filter: RecordingFilter) -> dict[str, Any]:
    """Return a listing's filter as bound parameters: the owner, and each narrowing that is set.

    Their names are the filters that :meth:`Statements.finder` and
    :meth:`Statements.keyset_finder` take.
    """
    params: dict[str, Any] = {"user_id": recording_filter.user_id}
    if recording_filter.appointment_id is not None:
        params["appointment_id"] = recording_filter.appointment_id
    if recording_filter.visit_id is not None:
        params["visit_id"] = recording_filter.visit_id
    if recording_filter.status is not None:
        params["status"] = RecordingStatus(recording_filter.status).value
    return params


def prefix_successor(prefix: str) -> str | None:
    """Return the least string greater than every string that starts with ``prefix``.

    None when there is none (an empty prefix, or one of only the largest code point).
    """
    stripped = prefix.rstrip(chr(_MAX_CODE_POINT))
    if not stripped:
        return None
    code = ord(stripped[-1]) + 1
    if code in _SURROGATES:  # not encodable as UTF-8: skip to the next real character
        code = _SURROGATES.stop
    return stripped[:-1] + chr(code)
