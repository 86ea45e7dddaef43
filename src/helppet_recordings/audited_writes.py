"""Repositories that store an audited change and its audit entry in one transaction.

An optional capability of a :class:`~helppet_recordings.ports.RecordingRepository`:
``save`` and ``mark_purged`` that take ``audit=``. Both shipped repositories
have it. The service uses it when :func:`stores_audit_atomically` says the
repository has it; with a repository that does not, the service writes the
entry right after the change, through ``record_audit``, as it always did.

The repository contract runs each audited-write case both ways, named in
the test id: ``[atomic]`` for a repository that declares the capability
(skipped, saying why, for one that does not), and ``[entry after the
change]`` for every repository.
"""

from __future__ import annotations

import datetime as dt
import inspect
from collections.abc import Callable
from typing import Protocol

from helppet_recordings.audit import AuditEntry
from helppet_recordings.models import Recording
from helppet_recordings.status import RecordingStatus

__all__ = ["AuditedWrites", "stores_audit_atomically"]


class AuditedWrites(Protocol):
    """The writes of a repository that appends an audit entry in the write's transaction.

    With ``audit``, the entry is stored atomically with the write: when the
    write happens, both are stored or neither is (an entry that cannot be
    stored, such as a duplicate id, raises and leaves the recording as it
    was); when it does not (a lost compare-and-set), no entry is stored.
    Without it, each method is the port's.

    A repository declares the capability by naming the parameter ``audit``
    in both signatures. A wrapper that forwards ``*args, **kwargs`` to one
    declares it with a true ``supports_atomic_audit`` attribute (a wrapper
    that forwards attribute reads too inherits the wrapped one's). A false
    one opts out whatever the signatures say.
    """

    def save(
        self,
        recording: Recording,
        *,
        expected_status: RecordingStatus,
        previous: Recording | None = None,
        expected_lease: dt.datetime | None = None,
        audit: AuditEntry | None = None,
    ) -> bool:
        """:meth:`RecordingRepository.save`, and ``audit`` with it (or neither)."""
        ...

    def mark_purged(self, recording: Recording, *, audit: AuditEntry | None = None) -> bool:
        """:meth:`RecordingRepository.mark_purged`, and ``audit`` with it (or neither)."""
        ...


def stores_audit_atomically(repository: object) -> bool:
    """Whether ``repository`` has :class:`AuditedWrites` (see there for how it declares it).

    Not when ``supports_atomic_audit`` is False. Otherwise both ``save`` and
    ``mark_purged`` must name ``audit``, or take ``**kwargs`` on a repository
    whose ``supports_atomic_audit`` is True (a wrapper that forwards them).
    A catch-all ``**kwargs`` alone is no declaration: it may belong to a
    wrapper around a repository without the capability, or drop the entry;
    and a subclass that overrides a write without ``audit`` loses the
    capability its parent declared.
    """
    declared = getattr(repository, "supports_atomic_audit", None)
    if declared is False:
        return False
    forwards = declared is True
    return all(
        _accepts_audit(getattr(repository, name, None), forwards=forwards)
        for name in ("save", "mark_purged")
    )


def _accepts_audit(method: Callable[..., object] | None, *, forwards: bool) -> bool:
    if method is None:
        return False
    try:
        parameters = inspect.signature(method).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(
        p.name == "audit" or (forwards and p.kind is inspect.Parameter.VAR_KEYWORD)
        for p in parameters
    )
