"""The resume state of one upload: a small JSON file, replaced atomically at each step.

It records which recording the upload belongs to, the idempotency key that
makes a repeated initiate return that recording, the identity of the file
(size, modification time and the whole file's SHA-256), a digest of what
the recording was asked for (content type, recording type, appointment,
visit, file name) and the kind of upload with its part size. A state file
whose identity or request does not match the upload being made is ignored:
it belongs to another file or request, or the file changed since. A state
file that is no such state (not UTF-8, not JSON, a field out of its range,
an idempotency key the API would refuse) is ignored the same way.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import threading
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from helppet_recordings.client._files import FileIdentity
from helppet_recordings.errors import RecordingError
from helppet_recordings.schemas import IdempotencyKey
from helppet_recordings.service.inputs import validation_error_from

__all__ = [
    "StateKeeper",
    "UploadState",
    "load_state",
    "read_state",
    "remove_state",
    "save_state",
]

logger = logging.getLogger("helppet_recordings.client")

UploadKind = Literal["post", "multipart"]


class UploadState(BaseModel):
    """What a restarted upload needs to carry on where the last one stopped."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    version: Literal[1] = 1
    idempotency_key: IdempotencyKey
    file_size: int = Field(ge=0)
    file_mtime_ns: int
    file_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    kind: UploadKind
    recording_id: uuid.UUID | None = None
    part_size: int | None = Field(default=None, ge=1)
    sent_parts: tuple[int, ...] = ()
    """Parts this client saw storage accept (informational: storage's list is the truth)."""
    request_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    """A digest of what the recording was asked for (type, appointment, visit, name), not
    the values: a resumed upload must file its audio where this run asks, or start anew."""

    def matches(self, identity: FileIdentity, request_sha256: str) -> bool:
        """Whether this state was written for exactly this file and request.

        A state written before requests were recorded (no digest) matches any.
        """
        return (self.file_size, self.file_mtime_ns, self.file_sha256) == (
            identity.size,
            identity.mtime_ns,
            identity.sha256,
        ) and self.request_sha256 in (None, request_sha256)

    @classmethod
    def start(
        cls,
        identity: FileIdentity,
        *,
        kind: UploadKind,
        idempotency_key: str,
        request_sha256: str | None = None,
    ) -> UploadState:
        """Return a fresh state for ``identity``, before the recording exists.

        Raises ``VALIDATION_ERROR`` for an idempotency key the API would refuse.
        """
        try:
            return cls(
                idempotency_key=idempotency_key,
                file_size=identity.size,
                file_mtime_ns=identity.mtime_ns,
                file_sha256=identity.sha256,
                kind=kind,
                request_sha256=request_sha256,
            )
        except pydantic.ValidationError as exc:
            raise validation_error_from(exc) from None


def load_state(path: Path) -> UploadState | None:
    """Read the state at ``path``; None when there is none or it cannot be read."""
    state = read_state(path)
    return state if isinstance(state, UploadState) else None


def read_state(path: Path) -> UploadState | Literal["missing", "unreadable"]:
    """Read the state at ``path``, or say why there is none: ``missing`` or ``unreadable``.

    ``unreadable`` covers a file that cannot be read and bytes that are no
    valid state (not UTF-8, not JSON, a field out of its range).
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return "missing"
    except OSError:
        return "unreadable"
    try:
        return UploadState.model_validate_json(raw)
    except ValueError:  # pydantic's ValidationError, invalid UTF-8 included
        return "unreadable"


def save_state(path: Path, state: UploadState) -> None:
    """Write ``state`` to ``path`` atomically (a temporary file renamed over it, fsynced)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=".upload-state-", dir=path.parent)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(state.model_dump_json())
            handle.flush()
            os.fsync(handle.fileno())
        Path(temporary).replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            Path(temporary).unlink()
        raise


def remove_state(path: Path) -> None:
    """Delete the state file (it is not an error if it is gone)."""
    path.unlink(missing_ok=True)


class StateKeeper:
    """The current state of one upload, saved after every change when it has a path.

    Parts finish on several threads; a lock orders their saves.
    """

    def __init__(self, path: Path | None, state: UploadState) -> None:
        self.path = path
        self._state = state
        self._lock = threading.Lock()
        self._save_locked()

    @property
    def state(self) -> UploadState:
        """The latest state."""
        with self._lock:
            return self._state

    def update(self, **changes: Any) -> None:
        """Change fields of the state and save it."""
        with self._lock:
            self._state = self._state.model_copy(update=changes)
            self._save_locked()

    def part_sent(self, part_number: int) -> None:
        """Record that storage accepted ``part_number``, and save."""
        self.parts_sent([part_number])

    def parts_sent(self, part_numbers: Iterable[int]) -> None:
        """Record that storage holds ``part_numbers`` with this file's bytes, and save (once)."""
        with self._lock:
            sent = tuple(sorted({*self._state.sent_parts, *part_numbers}))
            if sent == self._state.sent_parts:
                return
            self._state = self._state.model_copy(update={"sent_parts": sent})
            self._save_locked()

    def finished(self) -> None:
        """Remove the state file: the upload completed (a file left behind is only logged)."""
        if self.path is None:
            return
        try:
            remove_state(self.path)
        except OSError as exc:
            # The next run with it completes again, which answers the same recording.
            logger.warning(
                "the upload completed, but its state file could not be removed: %s",
                type(exc).__name__,
            )

    def _save_locked(self) -> None:
        if self.path is None:
            return
        try:
            save_state(self.path, self._state)
        except OSError as exc:
            # Named by its failure only: the path may carry a patient's or a file's name.
            raise RecordingError(
                "The upload state file could not be written", reason=type(exc).__name__
            ) from exc
